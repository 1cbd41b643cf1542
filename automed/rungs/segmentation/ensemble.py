"""Rung ``ensemble`` for segmentation: the mean softmax of deep rungs below it.

nnU-Net ends the same way: it averages the softmax of its 2D and 3D configurations and keeps
the ensemble when it beats every single one. Here the members are chosen on the deep rungs'
shared inner validation cases (drawn from fold 0's training cases), never on the comparison
cases, so the ensemble is judged on the same footing as its members. No member weights are
fitted: twenty validation cases would overfit them. Its cost is its members' cost plus its own
prediction time: it needs all of them to predict.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from automed.results import RungResult
from automed.rungs.base import FitContext, RungOutcome, RungPlan
from automed.rungs.segmentation.deep import DeepSegmentationRung
from automed.rungs.segmentation.deep_evaluation import evaluate_cases
from automed.rungs.ensemble import EnsembleRung, members_cost

__all__ = ["SegmentationEnsembleParams", "SegmentationEnsembleRung"]

log = logging.getLogger("automed")


@dataclass(frozen=True)
class SegmentationEnsembleParams:
    """Parameters of the segmentation ``ensemble`` rung.

    Parameters
    ----------
    members : tuple of str
        Deep rungs it may combine; empty: every finished deep rung below this one.
    select : bool
        Average the combination of two or more of them with the best mean Dice (after
        post-processing) on the inner validation cases; otherwise all of them.
    """

    members: tuple[str, ...] = ()
    select: bool = True


class SegmentationEnsembleRung(EnsembleRung):
    """Mean softmax of deep segmentation rungs, post-processed; predicts with every member."""

    tasks = ("segmentation",)
    Params = SegmentationEnsembleParams
    member_kind = "deep rungs of one model per fold (members: 1)"
    record_fields = ("postprocessing",)

    def _eligible(self, result: dict[str, Any]) -> bool:
        """A finished deep rung of one model per fold: a rung of several ``members`` holds out no
        inner validation case from all of them, so nothing is left to choose the ensemble on."""
        from automed.rungs import rung_class

        trainings = result.details.get("trainings") or []
        return super()._eligible(result) and issubclass(rung_class(result.name, "segmentation"),
                                                        DeepSegmentationRung) \
            and not any(t.get("member", 0) for t in trainings)

    def _n_cases(self, context: FitContext, members: list[RungResult]) -> int:
        """Cases each member predicts, for the estimate: the inner validation cases (the members'
        fewest; the default cap before any is known) plus the comparison cases."""
        inner = min((m.details["search"].get("inner_validation_cases") for m in members),
                    default=None) or DeepSegmentationRung.Params().max_validation_cases
        return inner + sum(len(val) for _, _, val in DeepSegmentationRung._evaluations(context))

    def _estimate(self, per_case: float, context: FitContext, members: list[RungResult]) -> float:
        """Seconds to predict the validation and comparison cases at ``per_case`` seconds each (all members)."""
        return 10.0 + 1.2 * per_case * self._n_cases(context, members)

    def reserve_seconds(self, context: FitContext, pending: Sequence[str]) -> float:
        """The estimate of :meth:`plan` with the pending deep rungs predicting as fast as the
        finished ones do on average (nothing before the first deep rung finishes)."""
        from automed.rungs import rung_class

        members = self._members(context)
        wanted = [n for n in pending if issubclass(rung_class(n, "segmentation"), DeepSegmentationRung)
                  and (not self.params.members or n in self.params.members)]
        if not members or len(members) + len(wanted) < 2:
            return 0.0
        per_case = np.mean([m.cost.predict_seconds_per_case or 0.0 for m in members])
        return self._estimate(per_case * (len(members) + len(wanted)), context, members)

    def plan(self, context: FitContext) -> RungPlan:
        members = self._members(context)
        skip = self._too_few(members)
        if skip is not None:
            return skip
        per_case = sum(m.cost.predict_seconds_per_case or 0.0 for m in members)
        seconds = self._estimate(per_case, context, members)
        note = f"mean softmax of {', '.join(m.name for m in members)}; predicts {per_case:.2f} s per case"
        if context.budget_s is not None and seconds > context.budget_s:
            return RungPlan(seconds, note=note, skip_reason=f"estimated {seconds / 60:.1f} min to predict the "
                            f"validation and comparison cases with every member > the "
                            f"{context.budget_s / 60:.1f} min allotted.")
        return RungPlan(seconds, note=note)

    def fit(self, context: FitContext, plan: RungPlan | None = None) -> RungOutcome:
        from automed.deep.volumes import load_volumes
        from automed.models.postprocess import apply_postprocessing, choose_postprocessing
        from automed.rungs.fitted import load_fitted

        started = time.monotonic()
        fp = context.fingerprint
        results = self._members(context)
        members = {r.name: load_fitted(r.name, "segmentation", context.folder.parent / r.name)
                   for r in results}
        evaluations = DeepSegmentationRung._evaluations(context)
        inner = [m._inner(evaluations[0][1], context)[1] for m in members.values()]
        inner_val = [c for c in inner[0] if all(c in other for other in inner[1:])]  # held out by every member
        volumes = load_volumes(context.dataset, fp, sorted({*inner_val, *(c for _, _, v in evaluations for c in v)}),
                               context.volume_cache)
        subsets = self._combinations(list(members))
        preds: dict[tuple[str, ...], list[np.ndarray]] = {s: [] for s in subsets}
        for case_id in inner_val:  # fold 0's models: these cases are held out from their training
            proba = {n: m.predict_proba(volumes[case_id].image, fold=0) for n, m in members.items()}
            for subset in subsets:
                preds[subset].append(np.mean([proba[n] for n in subset], axis=0).argmax(0).astype(np.uint8))
        first = 0 if context.include_background else 1
        truths = [volumes[c].label for c in inner_val]
        choices = {s: choose_postprocessing(preds[s], truths, fp.n_classes, first_class=first) for s in subsets}
        chosen = self._best(subsets, lambda s: choices[s][2])
        steps = choices[chosen][0]
        log.info("ensemble: %s chosen on %d inner validation cases (Dice %.4f)", "+".join(chosen), len(inner_val),
                 choices[chosen][2])

        def predict(fold: int, image: np.ndarray) -> np.ndarray:
            proba = np.mean([members[n].predict_proba(image, fold=fold) for n in chosen], axis=0)
            return apply_postprocessing(proba.argmax(0).astype(np.uint8), steps)

        per_case, seconds = evaluate_cases(context, evaluations, volumes, predict)
        self._save(context, chosen, postprocessing=steps)
        chosen_results = [r for r in results if r.name in chosen]
        cost = members_cost([r.cost for r in chosen_results])
        own_s = time.monotonic() - started
        cost["fit_seconds"] = (cost["fit_seconds"] or 0.0) + own_s
        hours = "gpu_hours" if cost["device"].startswith("cuda") else "core_hours"
        cost[hours] = (cost[hours] or 0.0) + own_s * (1 if hours == "gpu_hours" else context.n_jobs) / 3600
        return RungOutcome(
            per_case=per_case, postprocessing=steps,
            details={"members": list(chosen), "candidates": list(members),
                     "combination": "equal mean of the members' softmax",
                     "selection": {"+".join(s): choices[s][2] for s in subsets},
                     "selection_metric": "mean Dice after post-processing on the inner validation cases",
                     "n_validation_cases": len(inner_val), "own_seconds": own_s},
            n_params=sum(r.cost.n_params or 0 for r in chosen_results),
            predict_seconds_per_case=seconds, cost=cost,
        )

    def predict(self, image: np.ndarray) -> np.ndarray:
        """Class map of a normalised image: the members' mean softmax, argmax, post-processing."""
        return self.class_map(self.predict_proba(image))

    def predict_proba(self, image: np.ndarray, fold: int | None = None) -> np.ndarray:
        """The members' mean softmax of a normalised image (every model, or one fold's)."""
        return np.mean([m.predict_proba(image, fold=fold) for m in self.members_], axis=0)

    def class_map(self, proba: np.ndarray) -> np.ndarray:
        """The post-processed argmax of :meth:`predict_proba`'s probabilities."""
        from automed.models.postprocess import apply_postprocessing

        return apply_postprocessing(proba.argmax(0).astype(np.uint8), self.postprocessing_)

    def held_out_folds(self) -> int:
        """How many folds every member kept models of (see ``DeepSegmentationRung.held_out_folds``)."""
        return min(m.held_out_folds() for m in self.members_)
