"""Where a fit or a prediction may write: never over its inputs, and replace only what automed wrote.

``--overwrite`` replaces a run folder or a predictions folder only when it is recognisably
one (a run folder has ``run.json`` and ``recipe.yaml``; a predictions folder has the
``PREDICTIONS_RECORD`` that :func:`automed.ladder.predict.predict_run` writes, an export the
``EXPORT_RECORD``) and holds nothing but what that record lists (:func:`write_output_record`), and an
output that is, contains or lies inside one of the inputs is refused, with or without ``--overwrite``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from automed._jsonio import write_json
from automed.data.atomic import refuse_unwritable
from automed.errors import RunFolderError

__all__ = ["AUDIT_RECORD", "EXPORT_RECORD", "PREDICTIONS_RECORD", "check_output_folder", "is_run_folder", "refuse_overlap",
           "write_output_record"]

RUN_MARKERS = ("run.json", "recipe.yaml")
PREDICTIONS_RECORD = ".automed-predictions.json"
EXPORT_RECORD = "automed_model.json"
AUDIT_RECORD = ".automed-audit.json"
RECORDS = {"predictions": PREDICTIONS_RECORD, "export": EXPORT_RECORD, "audit": AUDIT_RECORD}
"""The file that marks a folder automed wrote, per kind of output other than a run."""
WRITTEN = "written"
"""The key of a record that lists every file automed wrote in its folder (paths relative to it)."""


def refuse_overlap(out: Path, inputs: dict[str, Path], option: str = "--out") -> None:
    """Raise if ``out`` is, contains or lies inside any of ``inputs`` (``{what it is: path}``)."""
    target = out.resolve()
    for what, path in inputs.items():
        source = path.resolve()
        if target == source:
            relation = "is"
        elif source.is_relative_to(target):
            relation = "contains"
        elif target.is_relative_to(source) and source.is_dir():
            relation = "lies inside"
        else:
            continue
        raise RunFolderError(f"{out}: {option} {relation} {what} ({path}); writing there could destroy it. "
                             f"Choose {option} outside it.")


def is_run_folder(folder: Path) -> bool:
    """Whether ``folder`` holds the files every automed run folder has."""
    return folder.is_dir() and all((folder / name).is_file() for name in RUN_MARKERS)


def check_output_folder(out: Path, overwrite: bool, kind: str) -> None:
    """Raise unless ``out`` may be written: absent, an empty folder, or (with ``overwrite``) a
    folder automed wrote of this ``kind`` (``"run"``, ``"predictions"``, ``"export"`` or ``"audit"``); a
    predictions, export or audit folder only while it holds nothing but the files its record lists.

    Raises
    ------
    RunFolderError
        ``out`` is taken.
    WriteError
        ``out`` could not be written (its disk is full or read-only, or its folder not writable).
    """
    refuse_unwritable(out)
    if not out.exists():
        return
    if not out.is_dir():
        raise RunFolderError(f"{out}: is a file, not a {kind} folder; choose another --out.")
    if not any(out.iterdir()):
        return
    if not overwrite:
        raise RunFolderError(f"{out}: {kind} folder already exists; pass --overwrite (overwrite=True) or choose "
                             "another --out.")
    if kind == "run":
        if not is_run_folder(out):
            raise RunFolderError(f"{out}: is not an automed run folder (it has no {' and '.join(RUN_MARKERS)}), so "
                                 "--overwrite will not replace it; choose another --out, or empty the folder yourself.")
        return
    _refuse_foreign_files(out, RECORDS[kind], kind)


def write_output_record(folder: Path, kind: str, record: dict[str, Any]) -> dict[str, Any]:
    """Write ``record`` as ``kind``'s record into ``folder`` (a predictions or export folder being built), with
    the list of every file in it under ``"written"``, so that ``--overwrite`` later replaces the folder only
    while it holds nothing else; call it when every other file is written. Returns what was written."""
    written = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    record = {**record, WRITTEN: written}
    write_json(folder / RECORDS[kind], record)
    return record


def _refuse_foreign_files(out: Path, name: str, kind: str) -> None:
    """Raise unless ``out`` holds ``name``, a record listing what automed wrote there, and nothing else."""
    record = out / name
    if not record.is_file():
        raise RunFolderError(f"{out}: is not an automed {kind} folder (it has no {name}), so --overwrite will not "
                             "replace it; choose another --out, or empty the folder yourself.")
    try:
        listed = json.loads(record.read_text())[WRITTEN]
        ours = {name, *listed, *(parent.as_posix() for f in listed for parent in Path(f).parents)}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RunFolderError(f"{record}: does not list the files automed wrote in {out} (an earlier automed wrote it, "
                             "or it was edited), so --overwrite will not replace the folder; choose another --out, or "
                             "empty the folder yourself.") from exc
    foreign = next((p for p in sorted(out.rglob("*")) if p.relative_to(out).as_posix() not in ours), None)
    if foreign is not None:
        raise RunFolderError(f"{out}: holds {foreign.relative_to(out)}, which automed did not write there, so "
                             f"--overwrite will not replace the folder; move it out of {out}, or choose another --out.")
