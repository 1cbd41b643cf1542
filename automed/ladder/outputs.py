"""Where a fit or a prediction may write: never over its inputs, and replace only what automed wrote.

``--overwrite`` replaces a run folder or a predictions folder only when it is recognisably
one (a run folder has ``run.json`` and ``recipe.yaml``; a predictions folder has the
``PREDICTIONS_RECORD`` that :func:`automed.ladder.predict.predict_run` writes), and an output
that is, contains or lies inside one of the inputs is refused, with or without ``--overwrite``.
"""

from __future__ import annotations

from pathlib import Path

from automed.errors import RunFolderError

__all__ = ["EXPORT_RECORD", "PREDICTIONS_RECORD", "check_output_folder", "is_run_folder", "refuse_overlap"]

RUN_MARKERS = ("run.json", "recipe.yaml")
PREDICTIONS_RECORD = ".automed-predictions.json"
EXPORT_RECORD = "automed_model.json"
RECORDS = {"predictions": PREDICTIONS_RECORD, "export": EXPORT_RECORD}
"""The file that marks a folder automed wrote, per kind of output other than a run."""


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
    folder automed wrote of this ``kind`` (``"run"``, ``"predictions"`` or ``"export"``)."""
    if not out.exists():
        return
    if not out.is_dir():
        raise RunFolderError(f"{out}: is a file, not a {kind} folder; choose another --out.")
    if not any(out.iterdir()):
        return
    if not overwrite:
        raise RunFolderError(f"{out}: {kind} folder already exists; pass --overwrite (overwrite=True) or choose "
                             "another --out.")
    ours = is_run_folder(out) if kind == "run" else (out / RECORDS[kind]).is_file()
    if not ours:
        sign = " and ".join(RUN_MARKERS) if kind == "run" else RECORDS[kind]
        raise RunFolderError(f"{out}: is not an automed {kind} folder (it has no {sign}), so --overwrite will not "
                             "replace it; choose another --out, or empty the folder yourself.")
