"""Rung ``ensemble`` for classification: the mean class probabilities of the rungs below it.

The members and the binary decision threshold are chosen on the validation cases every member
predicted without training on them (the classical rung's out-of-fold predictions, the deep
rungs' held-out validation cases, which also chose their best epoch); their stored
probabilities are averaged, so choosing retrains and re-predicts nothing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from automed._params import check_choice
from automed.metrics import TEST_SCORES, THRESHOLDS, choose_threshold, classification_scores, classification_summary
from automed.results import RungResult
from automed.rungs.base import FitContext, RungOutcome, RungPlan, case_probabilities
from automed.rungs.ensemble import EnsembleRung, members_cost, total

__all__ = ["ClassificationEnsembleParams", "ClassificationEnsembleRung"]


@dataclass(frozen=True)
class ClassificationEnsembleParams:
    """Parameters of the classification ``ensemble`` rung.

    Parameters
    ----------
    members : tuple of str
        Rungs it may average; empty: every finished rung below this one.
    threshold : {"accuracy", "balanced_accuracy", "fixed"}
        Binary decision threshold: maximising this score on the shared validation cases, or 0.5.
    select : bool
        Average the combination of two or more members with the best recipe metric on the
        shared validation cases; otherwise all of them.
    """

    members: tuple[str, ...] = ()
    threshold: str = "accuracy"
    select: bool = True

    def __post_init__(self) -> None:
        check_choice("the ensemble rung", "threshold", self.threshold, THRESHOLDS)


#: Held back while the members fit: scoring the candidate subsets takes seconds, and the reserve also
#: absorbs a member that overruns its allotment by a few seconds, which would otherwise leave nothing
#: (AdrenalMNIST3D's 3D cnn finished 13 s past its 1103 s and the ensemble was skipped).
RESERVE_S = 30.0


class ClassificationEnsembleRung(EnsembleRung):
    """Mean of the members' class probabilities; predicts with every member."""

    tasks = ("classification",)
    Params = ClassificationEnsembleParams
    member_kind = "rungs with validation predictions"
    record_fields = ("threshold", "classes")

    def _eligible(self, result: RungResult) -> bool:
        return super()._eligible(result) and bool(result.validation_per_case)

    @staticmethod
    def _shared_validation(members: list[RungResult]) -> list[str]:
        """Validation case ids every member predicted, in the first member's order."""
        shared = set.intersection(*({c["case_id"] for c in m.validation_per_case} for m in members))
        return [c["case_id"] for c in members[0].validation_per_case if c["case_id"] in shared]

    def reserve_seconds(self, context: FitContext, pending: Sequence[str]) -> float:
        """:data:`RESERVE_S` once two members can finish (nothing otherwise)."""
        return RESERVE_S if len(self._members(context)) + len(pending) >= 2 else 0.0

    def plan(self, context: FitContext) -> RungPlan:
        members = self._members(context)
        skip = self._too_few(members)
        if skip is not None:
            return skip
        if not self._shared_validation(members):
            return RungPlan(None, note="not planned", skip_reason="its members predicted no validation case "
                            "in common, so no decision threshold can be chosen.")
        return RungPlan(0.0, note=f"mean of {', '.join(m.name for m in members)}; trains nothing")

    def fit(self, context: FitContext, plan: RungPlan | None = None) -> RungOutcome:
        started = time.monotonic()
        results = {m.name: m for m in self._members(context)}
        classes = tuple(context.dataset.classes)
        index = {c: k for k, c in enumerate(classes)}
        val_ids = self._shared_validation(list(results.values()))
        scored = {}
        for subset in self._combinations(list(results)):
            y_val, val_proba = _mean_proba([results[n] for n in subset], "validation_per_case", val_ids, index)
            threshold = choose_threshold(self.params.threshold, y_val, val_proba) if len(classes) == 2 else None
            scored[subset] = (classification_scores(y_val, val_proba, threshold)[context.metric], y_val, val_proba,
                              threshold)
        chosen = self._best(list(scored), lambda s: scored[s][0])
        _, y_val, val_proba, threshold = scored[chosen]
        members = [results[n] for n in chosen]
        test_ids = [c["case_id"] for c in members[0].per_case]
        y_test, proba = _mean_proba(members, "per_case", test_ids, index)
        summary = classification_summary(y_test, proba, classes, threshold, context.random_state)
        self._save(context, chosen, threshold=threshold, classes=list(classes))
        metric = dict(summary[context.metric], name=context.metric, n=summary["n"])
        costs = [m.cost for m in members]
        return RungOutcome(
            per_case=case_probabilities(test_ids, y_test, proba, classes),
            validation_per_case=case_probabilities(val_ids, y_val, val_proba, classes),
            summary={"metric": metric, "per_class": summary["per_class"],
                     "test": {k: summary[k] for k in TEST_SCORES},
                     "threshold": threshold},
            details={"members": list(chosen), "n_validation_cases": len(val_ids),
                     "combination": "equal mean of the members' class probabilities",
                     "selection": {"+".join(s): v[0] for s, v in scored.items()},
                     "selection_metric": f"{context.metric} on the shared validation cases",
                     "own_seconds": time.monotonic() - started},
            n_params=total(costs, "n_params"), predict_seconds_per_case=total(costs, "predict_seconds_per_case"),
            cost=members_cost(costs),
        )

    def predict_proba(self, dataset: Any, cases: list[Any], n_jobs: int = 1, progress: bool = False) -> np.ndarray:
        """Mean class probabilities of the members, shape ``(n_cases, n_classes)``."""
        return self.member_probabilities(dataset, cases, n_jobs, progress).mean(axis=0)

    def member_probabilities(self, dataset: Any, cases: list[Any], n_jobs: int = 1,
                             progress: bool = False) -> np.ndarray:
        """Each member's class probabilities, shape ``(n_members, n_cases, n_classes)``."""
        return np.stack([m.predict_proba(dataset, cases, n_jobs=n_jobs, progress=progress) for m in self.members_])


def _mean_proba(members: list[RungResult], field: str, case_ids: list[str],
                index: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """Class indices and the members' mean probabilities of ``case_ids`` from their per-case ``field``."""
    by_member = [{c["case_id"]: c for c in getattr(m, field)} for m in members]
    y = np.array([index[by_member[0][c]["label"]] for c in case_ids])
    proba = np.mean([[records[c]["proba"] for c in case_ids] for records in by_member], axis=0)
    return y, proba
