"""What the ``ensemble`` rungs of both tasks share: members, the combinations tried, the choice, the cost.

Averaging models that err differently is the last step of most AutoML systems (auto-sklearn,
AutoGluon, nnU-Net's configuration ensembles). No member weights are fitted: on validation sets
of tens of cases fitted weights overfit. What is learned is which members to average (two or
more; a handful of candidate sets, not a continuum of weights), on validation cases every member
predicted without training on them. An ensemble needs all its members to predict, so its cost
is theirs. The task adapters (:mod:`~automed.rungs.classification.ensemble`,
:mod:`~automed.rungs.segmentation.ensemble`) score a combination and predict.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from automed.results import Cost, RungResult
from automed.rungs.base import FitContext, Rung, RungPlan
from automed.rungs.records import read_record, write_record

__all__ = ["ENSEMBLE_RECORD", "EnsembleRung", "members_cost", "total"]

ENSEMBLE_RECORD = "ensemble.json"


class EnsembleRung(Rung):
    """Base of the ensembles: the task adapter says which finished rungs may be members
    (:meth:`_eligible`) and how a combination scores; ``Params`` has ``members`` and ``select``."""

    name = "ensemble"
    cost_weight = 0.0  # trains nothing: it takes no share of the budget from the rungs below it
    combines_others = True
    #: What a member must be, in the skip reason (e.g. ``"deep rungs"``).
    member_kind: ClassVar[str] = "rungs"
    #: Fields of ``ensemble.json`` besides the parameters, restored as ``<field>_`` by :meth:`load`.
    record_fields: ClassVar[tuple[str, ...]] = ()

    def search_space(self, trial: Any) -> dict[str, Any]:
        return {}

    def _eligible(self, result: RungResult) -> bool:
        """Whether a finished rung's result can be averaged by this ensemble."""
        return result.name != self.name

    def _members(self, context: FitContext) -> list[RungResult]:
        """Results of the finished rungs it may average: its ``members``, else every eligible one."""
        finished = {r.name: r for r in context.finished if self._eligible(r)}
        names = self.params.members or tuple(finished)
        return [finished[n] for n in names if n in finished]

    def _too_few(self, members: list[RungResult]) -> RungPlan | None:
        """The skip plan when fewer than two members finished."""
        if len(members) >= 2:
            return None
        found = ", ".join(m.name for m in members) or "none"
        return RungPlan(None, note="not planned",
                        skip_reason=f"an ensemble needs two finished {self.member_kind} (found: {found}).")

    def _combinations(self, names: Sequence[str]) -> list[tuple[str, ...]]:
        """Every set of two or more of ``names`` when ``select``, else all of them."""
        sizes = range(2, len(names) + 1) if self.params.select else [len(names)]
        return [s for r in sizes for s in itertools.combinations(names, r)]

    @staticmethod
    def _best(combinations: list[tuple[str, ...]], score: Callable[[tuple[str, ...]], float]) -> tuple[str, ...]:
        """The combination with the best score; among ties the fewest members (cheapest to predict)."""
        return max(combinations, key=lambda s: (score(s), -len(s)))

    def _save(self, context: FitContext, members: Sequence[str], **fields: Any) -> None:
        context.folder.mkdir(parents=True, exist_ok=True)
        write_record(context.folder / ENSEMBLE_RECORD, self.params, members=list(members), **fields)

    @classmethod
    def load(cls, folder: Path) -> EnsembleRung:
        """The fitted ensemble saved in ``folder``, with its members loaded from their sibling folders."""
        from automed.rungs.fitted import load_fitted

        params, meta = read_record(folder / ENSEMBLE_RECORD, cls.Params, ("members", *cls.record_fields))
        rung = cls(dataclasses.replace(params, members=tuple(meta["members"])))
        rung.members_ = [load_fitted(name, cls.tasks[0], folder.parent / name) for name in meta["members"]]
        for key in cls.record_fields:
            setattr(rung, f"{key}_", meta[key])
        return rung


def members_cost(costs: list[Cost]) -> dict[str, Any]:
    """Cost fields of a rung that needs all its members (their costs): times add up, memory is the largest."""
    return {"fit_seconds": total(costs, "fit_seconds"), "core_hours": total(costs, "core_hours"),
            "gpu_hours": total(costs, "gpu_hours"), "peak_rss_bytes": _largest(costs, "peak_rss_bytes"),
            "peak_vram_bytes": _largest(costs, "peak_vram_bytes"),
            "est_train_vram_bytes": _largest(costs, "est_train_vram_bytes"),
            "device": next((c.device for c in costs if str(c.device).startswith("cuda")), "cpu")}


def total(costs: list[Cost], key: str) -> float | None:
    """The sum of the field ``key`` over ``costs`` that have it (None when none has)."""
    values = [getattr(c, key) for c in costs if getattr(c, key) is not None]
    return sum(values) if values else None


def _largest(costs: list[Cost], key: str) -> float | None:
    values = [getattr(c, key) for c in costs if getattr(c, key) is not None]
    return max(values) if values else None
