"""A rung's result (``rungs/<name>/result.json``): one frozen record, written and read only here.

The runner builds a :class:`RungResult` from the rung's plan, outcome and measured cost, the
judge adds the comparison and gains, and :func:`write_result` stores it with the automed
version. Everything that reads a result (a resumed fit, the report, the learning curve) goes
through :func:`read_result`, so a folder written by another version, or edited by hand, fails
with a :class:`~automed.errors.RunFolderError` naming the file and the version that wrote it.
The JSON layout is flat (the report renders from it alone); :meth:`RungResult.to_dict` gives it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from automed._jsonio import flat_with_extra, from_flat_with_extra, write_json
from automed.environment import automed_version
from automed.errors import RunFolderError

__all__ = ["Cost", "Estimate", "RESULT", "RungResult", "read_result", "write_result"]

RESULT = "result.json"
STATUSES = ("done", "skipped")


@dataclass(frozen=True)
class Estimate:
    """What the rung's plan expected: wall seconds, training memory, how it was estimated, the allotment."""

    seconds: float | None
    train_vram_bytes: int | None = None
    note: str = ""
    allotted_seconds: float | None = None


@dataclass(frozen=True)
class Cost:
    """What a finished rung cost, measured by the runner (wall time, memory) and the rung (the rest).

    ``extra`` holds fields only some rungs have (e.g. ``pretrain_seconds``); they are written
    beside the others. Fields other than ``fit_seconds`` may be absent from runs of older versions.
    """

    fit_seconds: float
    peak_rss_bytes: int | None = None
    peak_vram_bytes: int | None = None
    n_params: int | None = None
    predict_seconds_per_case: float | None = None
    device: str | None = None
    n_jobs: int | None = None
    est_train_vram_bytes: int | None = None
    core_hours: float | None = None
    gpu_hours: float | None = None
    search_seconds: float | None = None
    final_fit_seconds: float | None = None
    n_trials: int | None = None
    n_trials_pruned: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return flat_with_extra(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Cost:
        return from_flat_with_extra(cls, values)


@dataclass(frozen=True)
class RungResult:
    """A rung's result: ``done`` with its scores and cost, or ``skipped`` with the reason.

    Attributes
    ----------
    metric, per_class : dict or None
        The rung's summary (``{"name", "mean", "ci_low", "ci_high", ...}`` and per class).
    summary : dict
        Task-specific summary fields (classification: ``test``, ``threshold``, ``gradcam``).
    comparison, gain_vs_baseline, gain_vs_prev, gain_vs_reference : dict or None
        Added by the judge: the metric on the comparison cases, and paired gains with CIs.
    stops_climb : str or None
        Why climbing stops after this rung (its gain was confidently below ``min_gain``).
    checksums : dict or None
        SHA-256 of each weight file the rung saved (:mod:`automed.rungs.fitted`); None in older runs.
    """

    name: str
    status: str
    reason: str | None = None
    metric: dict[str, Any] | None = None
    per_class: dict[str, Any] | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    cost: Cost | None = None
    estimate: Estimate | None = None
    shrunk: tuple[str, ...] = ()
    postprocessing: list[dict[str, Any]] | None = None
    details: dict[str, Any] = field(default_factory=dict)
    per_case: list[dict[str, Any]] = field(default_factory=list)
    validation_per_case: list[dict[str, Any]] = field(default_factory=list)
    comparison: dict[str, Any] | None = None
    gain_vs_baseline: dict[str, Any] | None = None
    gain_vs_prev: dict[str, Any] | None = None
    gain_vs_reference: dict[str, Any] | None = None
    stops_climb: str | None = None
    checksums: dict[str, str] | None = None

    @property
    def done(self) -> bool:
        """Whether the rung finished (else it was skipped)."""
        return self.status == "done"

    @property
    def comparison_mean(self) -> float | None:
        """The judged metric's mean on the comparison cases (None before judging or when undefined)."""
        return None if self.comparison is None else self.comparison["metric"]["mean"]

    def to_dict(self) -> dict[str, Any]:
        """The flat JSON layout of ``result.json``."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("summary", "cost", "estimate")}
        out.update(self.summary, cost=None if self.cost is None else self.cost.to_dict(),
                   estimate=None if self.estimate is None else asdict(self.estimate), shrunk=list(self.shrunk))
        for optional in ("gain_vs_reference", "stops_climb", "checksums"):
            if out[optional] is None:
                del out[optional]
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RungResult:
        """Inverse of :meth:`to_dict` (``ValueError``/``KeyError``/``TypeError`` on a malformed dict)."""
        values = dict(values)
        values.pop("automed", None)
        if values.get("status") not in STATUSES:
            raise ValueError(f"status {values.get('status')!r} is not one of {list(STATUSES)}")
        if values["status"] == "done":
            missing = [k for k in ("metric", "per_class", "cost", "per_case") if values.get(k) is None]
            if missing:
                raise KeyError(f"a finished rung's {', '.join(missing)}")
        known = {f.name for f in fields(cls)} - {"summary"}
        cost, estimate = values.pop("cost", None), values.pop("estimate", None)
        return cls(**{k: v for k, v in values.items() if k in known - {"cost", "estimate", "shrunk"}},
                   summary={k: v for k, v in values.items() if k not in known},
                   cost=None if cost is None else Cost.from_dict(cost),
                   estimate=None if estimate is None else Estimate(**estimate),
                   shrunk=tuple(values.get("shrunk") or ()))


def write_result(folder: Path, result: RungResult) -> RungResult:
    """Write ``result`` to ``folder/result.json`` atomically, with this automed's version; return it."""
    write_json(folder / RESULT, {"automed": automed_version(), **result.to_dict()})
    return result


def read_result(folder: Path) -> RungResult:
    """The result in ``folder/result.json``, checked.

    Raises
    ------
    RunFolderError
        If the file is missing, not JSON, or not a result this automed reads.
    """
    path = folder / RESULT
    written_by = "an unknown version"
    try:
        values = json.loads(path.read_text())
        written_by = f"automed {values.get('automed') or 'before 0.1.0'}"
        return RungResult.from_dict(values)
    except FileNotFoundError as exc:
        raise RunFolderError(f"{path}: missing; the run folder is damaged.") from exc
    except json.JSONDecodeError as exc:
        raise RunFolderError(f"{path}: not JSON ({exc}); the run folder is damaged.") from exc
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise RunFolderError(f"{path}: written by {written_by}, is not a result this automed ({automed_version()}) "
                             f"reads (bad or missing {exc}). Refit the run.") from exc
