"""A run folder's life: built in a hidden sibling and renamed into place only when complete.

``.<out>.partial`` holds a fit in progress, with ``state.json`` (the seconds spent) once
its set-up is written. It is kept for ``automed fit --resume`` only where resuming can
help: after an interruption, or a failure from outside the fit's data and recipe (memory,
disk, a crash). A fit stopped by its data or recipe removes it, since a resume would stop
the same way.

A finished run lists the files automed wrote in ``.automed-files.json``, so ``--overwrite``
replaces only those: a run folder that holds anything else (a user's notes) is refused
(:func:`foreign_files`), and a file added while the new fit ran is carried over into it.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from automed._jsonio import write_json
from automed.errors import AutomedError

__all__ = ["MANIFEST", "STATE", "Clock", "add_to_manifest", "foreign_files", "run_folder", "run_staged",
           "staging_folder", "write_json"]

log = logging.getLogger("automed")
STATE = "state.json"
MANIFEST = ".automed-files.json"
"""The files (relative paths) automed wrote into a finished run folder."""
_OLDER_RUNS = ("recipe.yaml", "fingerprint.json", "splits.json", "run.json", "optuna.db", "realised_plan.json",
               "replay.json", "automed.log", "report.json", "report.md", "report.html", "pareto.png",
               "dice_boxplot.png", "learning_curve.png", "learning_curve.json", "dataset_listing.json", "rungs", "cache",
               "raters.json", "quality.json", "site_shift.json")
"""What a run folder without :data:`MANIFEST` may hold at its top level (folders: all they hold): one written before
it, with the run-level records written since."""


def staging_folder(out: Path) -> Path:
    """The hidden folder a fit of ``out`` is built in."""
    return out.parent / f".{out.name}.partial"


def run_folder(staging: Path) -> Path:
    """The run folder whose fit is built in ``staging`` (the inverse of :func:`staging_folder`)."""
    return staging.parent / staging.name.removeprefix(".").removesuffix(".partial")


def run_staged(out: Path, set_up: Callable[[Path], Any] | None, climb: Callable[[Path, Any], None]) -> Path:
    """Run ``set_up`` (a new fit; ``None`` to resume) and ``climb`` in the staging folder of ``out``,
    then put it in place of ``out``; the log goes to ``automed.log`` inside it.

    ``climb(folder, started)`` receives what ``set_up`` returned (``None`` on a resume), so a
    new fit neither opens its data twice nor reads back what it has just written.

    Returns
    -------
    Path
        ``out``, complete.
    """
    staging = staging_folder(out)
    handler = _attach_log(staging / "automed.log")
    try:
        started = None
        if set_up is not None:
            started = set_up(staging)
        else:
            log.info("automed fit --resume %s", out)
        climb(staging, started)
    except BaseException as exc:
        _detach_log(handler)
        _keep_or_remove(staging, out, exc)
        raise
    _detach_log(handler)
    (staging / STATE).unlink()
    write_json(staging / MANIFEST, sorted(_files(staging)))
    _swap_into_place(staging, out)
    return out


def foreign_files(out: Path) -> list[str]:
    """The files in the run folder ``out`` that automed did not write (relative paths, sorted)."""
    import json

    manifest = out / MANIFEST
    if manifest.is_file():
        try:
            ours = set(json.loads(manifest.read_text())) | {MANIFEST}
        except (OSError, ValueError, TypeError):
            ours = set()  # damaged: every file counts as the user's, so nothing is replaced
        return sorted(_files(out) - ours)
    return sorted(f for f in _files(out) if f.split("/")[0] not in _OLDER_RUNS)


def add_to_manifest(out: Path, written: list[Path]) -> None:
    """List the files ``written`` into the finished run folder ``out`` after its fit (an audit) as automed's own,
    so that ``--overwrite`` may replace them; a run folder without a manifest (an older one) is left as it is."""
    import json

    manifest = out / MANIFEST
    if manifest.is_file():
        ours = set(json.loads(manifest.read_text()))
        write_json(manifest, sorted(ours | {p.relative_to(out).as_posix() for p in written}))


def _files(folder: Path) -> set[str]:
    """Every file under ``folder``, as paths relative to it."""
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if not p.is_dir()}


def _keep_or_remove(staging: Path, out: Path, exc: BaseException) -> None:
    """Keep the staging folder where a resume can succeed, and say which it is."""
    if not (staging / STATE).is_file():
        shutil.rmtree(staging, ignore_errors=True)
    elif isinstance(exc, AutomedError):
        log.error("The fit stopped on a problem with its data or recipe; resuming would stop the same way, so %s "
                  "was removed. Fix the problem and fit again.", staging)
        shutil.rmtree(staging, ignore_errors=True)
    else:
        outside = isinstance(exc, (KeyboardInterrupt, SystemExit, MemoryError, OSError)) \
            or "OutOfMemory" in type(exc).__name__
        reason = "interrupted" if isinstance(exc, (KeyboardInterrupt, SystemExit)) \
            else f"{type(exc).__name__}: {str(exc)[:200]}"
        log.error("The fit stopped (%s); its progress is kept in %s. %s: automed fit --resume %s "
                  "(or start again with --overwrite).", reason, staging,
                  "Continue it with" if outside else "Once the cause is fixed, continue it with", out)


class Clock:
    """Seconds the fit has spent, across resumes; saved every few seconds to ``state.json``."""

    def __init__(self, path: Path, interval_s: float = 5.0) -> None:
        self.path = path
        self._offset = json.loads(path.read_text())["spent_s"]
        self._start = time.monotonic()
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._beat, args=(interval_s,), daemon=True)
        self._thread.start()

    def spent(self) -> float:
        return self._offset + time.monotonic() - self._start

    def _beat(self, interval_s: float) -> None:
        while not self._halt.wait(interval_s):
            write_json(self.path, {"spent_s": self.spent()})

    def stop(self) -> None:
        self._halt.set()
        self._thread.join()
        write_json(self.path, {"spent_s": self.spent()})


def _attach_log(path: Path) -> logging.Handler:
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    return handler


def _detach_log(handler: logging.Handler) -> None:
    log.removeHandler(handler)
    handler.close()


def _swap_into_place(staging: Path, out: Path) -> None:
    """Rename the finished staging folder to ``out``, replacing an old run only now; a file that is
    not automed's (added while the fit ran) is carried over, or, where the new run has one of that
    name, the old run is kept beside it."""
    if not out.exists():
        staging.rename(out)
        return
    trash = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
    out.rename(trash)
    kept = False
    for name in foreign_files(trash):
        if (staging / name).exists():
            kept = True
            continue
        (staging / name).parent.mkdir(parents=True, exist_ok=True)
        (trash / name).rename(staging / name)
        log.warning("%s: not written by automed; carried over into the new run", out / name)
    staging.rename(out)
    if kept:
        log.warning("%s: the replaced run holds files automed did not write that the new run also has; "
                    "it is kept there", trash)
    else:
        shutil.rmtree(trash, ignore_errors=True)
