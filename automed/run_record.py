"""A run's record (``run.json``): one frozen record, written and read only here.

The runner writes it at set-up (data, seed, hardware, versions, constraints) and again when the
fit ends (its seconds and why climbing stopped early); a resume, a replay and the report read it
through :func:`read_run`, so a damaged file or one from a version that lacked a field fails with a
:class:`~automed.errors.RunFolderError` naming the file and the version that wrote it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from automed._jsonio import flat_with_extra, from_flat_with_extra, write_json
from automed.errors import RunFolderError

__all__ = ["RUN", "RunRecord", "read_run", "write_run"]

RUN = "run.json"
REQUIRED = ("data", "format", "hardware", "versions", "seed", "created_at")
"""Fields every run.json has had since automed 0.1.0."""


@dataclass(frozen=True)
class RunRecord:
    """What a run was fitted on and with, and how the fit went.

    Attributes
    ----------
    data, format : str
        The dataset's absolute path and its layout.
    seed : int
        The recipe's random state.
    created_at : str
        When the fit started (ISO 8601, UTC).
    hardware, versions : dict
        :func:`automed.environment.hardware` and :func:`automed.environment.versions`.
    automed_commit, command_line, n_jobs, dataset_listing, constraints, compute_peak, replay_of
        The code's commit, the command, the workers, the dataset listing's checksum, the budget and
        limits, the device's measured peak and the run a replay replays; None where not recorded
        (older runs).
    run_id : str or None
        The run's identity, the prefix of its Optuna study names (None: older runs).
    study_storage : str or None
        The database shared with ``automed worker`` processes, its password masked (None: the run
        folder's own SQLite file).
    dask : str or None
        Where per-case features were extracted: ``"local"``, a Dask scheduler's address, or None
        (this machine's processes).
    fit_seconds, stopped_early : float, str or None
        Set when the fit ends: its seconds, and why climbing stopped early (None: it did not).
    extra : dict
        Fields of a newer automed, kept as they were.
    """

    data: str
    format: str
    seed: int
    created_at: str
    hardware: dict[str, Any]
    versions: dict[str, Any]
    automed_commit: dict[str, Any] | None = None
    command_line: str | None = None
    n_jobs: int | None = None
    dataset_listing: dict[str, Any] | None = None
    constraints: dict[str, Any] | None = None
    compute_peak: dict[str, Any] | None = None
    replay_of: str | None = None
    run_id: str | None = None
    study_storage: str | None = None
    dask: str | None = None
    fit_seconds: float | None = None
    stopped_early: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The flat JSON layout of ``run.json``."""
        return flat_with_extra(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunRecord:
        """Inverse of :meth:`to_dict` (``KeyError`` naming the missing fields)."""
        missing = [k for k in REQUIRED if k not in values]
        if missing:
            raise KeyError(missing)
        return from_flat_with_extra(cls, values)


def write_run(folder: Path, record: RunRecord) -> None:
    """Write ``record`` to ``folder/run.json`` atomically."""
    write_json(folder / RUN, record.to_dict())


def read_run(folder: Path) -> RunRecord:
    """The record in ``folder/run.json``.

    Raises
    ------
    RunFolderError
        If the file is missing, not JSON, or lacks a field every run has (naming the version that wrote it).
    """
    path = folder / RUN
    try:
        values = json.loads(path.read_text())
        return RunRecord.from_dict(values)
    except FileNotFoundError as exc:
        raise RunFolderError(f"{path}: missing; the run folder is damaged.") from exc
    except json.JSONDecodeError as exc:
        raise RunFolderError(f"{path}: not JSON ({exc}); the run folder is damaged.") from exc
    except (KeyError, TypeError, AttributeError) as exc:
        written_by = ((values.get("versions") or {}).get("automed") if isinstance(values, dict) else None) \
            or "a version before 0.1.0"
        raise RunFolderError(f"{path}: written by automed {written_by}, lacks {exc}; refit the run with this "
                             "automed.") from exc
