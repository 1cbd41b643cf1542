"""A fitted rung's files: the SHA-256 of each weight file, recorded at fit time and verified on every load.

The runner records :func:`weight_checksums` of a rung's folder in its ``result.json``
(``checksums``); :func:`load_fitted` checks them before any file is unpickled or read by
``torch.load``, so a damaged or altered weight file is refused instead of predicting with it.
:func:`missing_files` says whether a finished rung can still be loaded at all.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from automed.errors import RunFolderError

__all__ = ["WEIGHT_SUFFIXES", "load_fitted", "missing_files", "verify_weights", "weight_checksums"]

log = logging.getLogger("automed")
WEIGHT_SUFFIXES = (".pt", ".joblib")
"""The files of a rung folder that hold fitted weights or models (state dicts, pickles)."""


def weight_checksums(folder: Path) -> dict[str, str]:
    """``{file name: SHA-256}`` of every weight file directly in ``folder``."""
    found = {}
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if path.is_file() and path.suffix in WEIGHT_SUFFIXES:
            with path.open("rb") as handle:
                found[path.name] = hashlib.file_digest(handle, "sha256").hexdigest()
    return found


def verify_weights(folder: Path) -> None:
    """Check the weight files of the rung in ``folder`` against the checksums its ``result.json`` records.

    A run fitted before checksums were recorded is loaded unchecked, with a warning.

    Raises
    ------
    RunFolderError
        If a recorded file is missing or its content changed.
    """
    from automed.results import read_result

    recorded = read_result(folder).checksums
    if recorded is None:
        log.warning("%s: no weight checksums recorded (fitted by an older automed); its files are loaded unchecked.",
                    folder)
        return
    actual = weight_checksums(folder)
    for name, digest in sorted(recorded.items()):
        if name not in actual:
            raise RunFolderError(f"{folder / name}: missing; the run folder is damaged: fit again.")
        if actual[name] != digest:
            raise RunFolderError(f"{folder / name}: checksum does not match the one recorded at fit time; the file was "
                                 "changed or damaged; fit again.")


def load_fitted(name: str, task: str, folder: Path) -> Any:
    """The fitted rung ``name`` saved in ``folder``, its weights verified first (:func:`verify_weights`).

    Raises
    ------
    TypeError
        If the loaded rung does not predict as ``task``'s fitted models do (its ``fitted_model`` protocol).
    """
    from automed.rungs import rung_class
    from automed.tasks import get_task

    cls = rung_class(name, task)
    verify_weights(folder)
    model = cls.load(folder)
    protocol = get_task(task).fitted_model
    if not isinstance(model, protocol):
        raise TypeError(f"the {task} rung {name} ({cls.__qualname__}) does not implement {protocol.__qualname__}")
    return model


def missing_files(folder: Path) -> list[str]:
    """The files a finished rung in ``folder`` needs to be loaded that are gone: its ``result.json``, the weight
    files it records, and an ensemble's members' files."""
    from automed.results import RESULT, read_result
    from automed.rungs.ensemble import ENSEMBLE_RECORD

    if not (folder / RESULT).is_file():
        return [str(folder / RESULT)]
    try:
        recorded = read_result(folder).checksums
    except RunFolderError:
        return []  # damaged rather than missing: loading it says so
    gone = [str(folder / n) for n in sorted(recorded or {}) if not (folder / n).is_file()]
    if (folder / ENSEMBLE_RECORD).is_file():
        try:
            members = json.loads((folder / ENSEMBLE_RECORD).read_text()).get("members") or []
        except (OSError, ValueError, AttributeError):
            members = []
        gone += [f for m in members if isinstance(m, str) for f in missing_files(folder.parent / m)]
    return gone
