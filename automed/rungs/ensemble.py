"""Rung ``ensemble``: the mean class probabilities of the classification rungs below it.

Averaging models that err differently is the last step of most AutoML systems (auto-sklearn,
AutoGluon, nnU-Net's configuration ensembles). No member weights are fitted: on validation sets
of tens of cases fitted weights overfit. What is learned is which members to average (two or
more; a handful of candidate sets, not a continuum of weights) and the binary decision
threshold, on the validation cases every member predicted without training on them (the
classical rung's out-of-fold predictions, the deep rungs' held-out validation cases, which
also chose their best epoch). Its cost is its members' cost: it needs all of them to predict.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from automed._params import check_choice
from automed.metrics import THRESHOLDS, choose_threshold, classification_scores, classification_summary
from automed.rungs.base import FitContext, Rung, RungOutcome, RungPlan, case_probabilities
from automed.rungs.records import read_record, write_record

__all__ = ["EnsembleParams", "EnsembleRung", "members_cost"]


@dataclass(frozen=True)
class EnsembleParams:
    """Parameters of the ``ensemble`` rung.

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


class EnsembleRung(Rung):
    """Mean of the members' class probabilities; predicts with every member."""

    name = "ensemble"
    tasks = ("classification",)
    Params = EnsembleParams
    cost_weight = 0.0  # trains nothing: it takes no share of the budget from the rungs below it
    combines_others = True

    def search_space(self, trial: Any) -> dict[str, Any]:
        return {}

    def _members(self, context: FitContext) -> list[dict[str, Any]]:
        finished = {r["name"]: r for r in context.finished if r.get("validation_per_case")}
        names = self.params.members or tuple(finished)
        return [finished[n] for n in names if n in finished]

    @staticmethod
    def _shared_validation(members: list[dict[str, Any]]) -> list[str]:
        """Validation case ids every member predicted, in the first member's order."""
        shared = set.intersection(*({c["case_id"] for c in m["validation_per_case"]} for m in members))
        return [c["case_id"] for c in members[0]["validation_per_case"] if c["case_id"] in shared]

    def plan(self, context: FitContext) -> RungPlan:
        members = self._members(context)
        if len(members) < 2:
            found = ", ".join(m["name"] for m in members) or "none"
            return RungPlan(None, note="not planned", skip_reason=f"an ensemble needs two finished rungs with "
                            f"validation predictions (found: {found}).")
        if not self._shared_validation(members):
            return RungPlan(None, note="not planned", skip_reason="its members predicted no validation case "
                            "in common, so no decision threshold can be chosen.")
        return RungPlan(0.0, note=f"mean of {', '.join(m['name'] for m in members)}; trains nothing")

    def fit(self, context: FitContext, plan: RungPlan | None = None) -> RungOutcome:
        candidates = self._members(context)
        classes = tuple(context.dataset.classes)
        index = {c: k for k, c in enumerate(classes)}
        val_ids = self._shared_validation(candidates)
        sizes = range(2, len(candidates) + 1) if self.params.select else [len(candidates)]
        subsets = [list(s) for r in sizes for s in itertools.combinations(candidates, r)]
        scored = {}
        for subset in subsets:
            y_val, val_proba = _mean_proba(subset, "validation_per_case", val_ids, index)
            threshold = choose_threshold(self.params.threshold, y_val, val_proba) if len(classes) == 2 else None
            value = classification_scores(y_val, val_proba, threshold)[context.metric]
            scored["+".join(m["name"] for m in subset)] = (value, subset, y_val, val_proba, threshold)
        # The best validation metric; among ties the fewest members (cheapest to predict).
        _, members, y_val, val_proba, threshold = max(scored.values(), key=lambda v: (v[0], -len(v[1])))
        test_ids = [c["case_id"] for c in members[0]["per_case"]]
        y_test, proba = _mean_proba(members, "per_case", test_ids, index)
        summary = classification_summary(y_test, proba, classes, threshold, context.random_state)
        names = [m["name"] for m in members]
        context.folder.mkdir(parents=True, exist_ok=True)
        write_record(context.folder / "ensemble.json", self.params, members=names, threshold=threshold,
                     classes=list(classes))
        metric = dict(summary[context.metric], name=context.metric, n=summary["n"])
        costs = [m["cost"] or {} for m in members]
        return RungOutcome(
            per_case=case_probabilities(test_ids, y_test, proba, classes),
            validation_per_case=case_probabilities(val_ids, y_val, val_proba, classes),
            summary={"metric": metric, "per_class": summary["per_class"],
                     "test": {k: summary[k] for k in ("auc", "accuracy", "balanced_accuracy", "confusion_matrix")},
                     "threshold": threshold},
            details={"members": names, "n_validation_cases": len(val_ids),
                     "combination": "equal mean of the members' class probabilities",
                     "selection": {k: v[0] for k, v in scored.items()},
                     "selection_metric": f"{context.metric} on the shared validation cases"},
            n_params=_total(costs, "n_params"),
            predict_seconds_per_case=_total(costs, "predict_seconds_per_case"),
            cost=members_cost(costs),
        )

    @classmethod
    def load(cls, folder: Path) -> EnsembleRung:
        """The fitted ensemble saved in ``folder``, with its members loaded from their sibling folders."""
        from automed.rungs import rung_class

        params, meta = read_record(folder / "ensemble.json", EnsembleParams, ("members", "threshold"))
        rung = cls(dataclasses.replace(params, members=tuple(meta["members"])))
        rung.members_ = [rung_class(name, "classification").load(folder.parent / name) for name in meta["members"]]
        rung.threshold_ = meta["threshold"]
        rung.classes_ = tuple(meta["classes"])
        return rung

    def predict_proba(self, dataset: Any, cases: list[Any], n_jobs: int = 1, progress: bool = False) -> np.ndarray:
        """Mean class probabilities of the members, shape ``(n_cases, n_classes)``."""
        return np.mean([m.predict_proba(dataset, cases, n_jobs=n_jobs, progress=progress) for m in self.members_],
                       axis=0)


def _mean_proba(members: list[dict[str, Any]], key: str, case_ids: list[str],
                index: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """Class indices and the members' mean probabilities of ``case_ids`` from their ``key`` records."""
    by_member = [{c["case_id"]: c for c in m[key]} for m in members]
    y = np.array([index[by_member[0][c]["label"]] for c in case_ids])
    proba = np.mean([[records[c]["proba"] for c in case_ids] for records in by_member], axis=0)
    return y, proba


def members_cost(costs: list[dict[str, Any]]) -> dict[str, Any]:
    """Cost fields of a rung that needs all its members: times and parameters add up, memory is the largest."""
    return {"fit_seconds": _total(costs, "fit_seconds"), "core_hours": _total(costs, "core_hours"),
            "gpu_hours": _total(costs, "gpu_hours"), "peak_rss_bytes": _largest(costs, "peak_rss_bytes"),
            "peak_vram_bytes": _largest(costs, "peak_vram_bytes"),
            "est_train_vram_bytes": _largest(costs, "est_train_vram_bytes"),
            "device": next((c["device"] for c in costs if str(c.get("device")).startswith("cuda")), "cpu")}


def _total(costs: list[dict[str, Any]], key: str) -> float | None:
    values = [c[key] for c in costs if c.get(key) is not None]
    return sum(values) if values else None


def _largest(costs: list[dict[str, Any]], key: str) -> float | None:
    values = [c[key] for c in costs if c.get(key) is not None]
    return max(values) if values else None
