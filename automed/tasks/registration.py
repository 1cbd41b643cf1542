"""Registration: align a moving image to a fixed one; a classical (SimpleITK) baseline first, then VoxelMorph.

Rungs are judged on the evaluation pairs (never trained or tuned on; their images are held out of training):
by the warped labels' Dice (mean over structures per pair, bootstrap CI over pairs) where the pairs have
labels, else by the warped image's normalised cross-correlation; every rung also reports folding, the
smoothness of its Jacobian and its seconds per pair.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from automed.rungs.registration.base import RegistrationModel
from automed.tasks.base import GainOver, Opened, Prepared, Task, about

if TYPE_CHECKING:
    from automed.recipe import Recipe
    from automed.results import RungResult
    from automed.rungs.base import FitContext, RungOutcome

__all__ = ["Registration", "pair_scores"]

_CLASSICAL = "automed.rungs.registration.classical:ClassicalRegistrationRung"
PAIR_FIELDS = ("seconds", "folding", "sd_log_jacobian", "ncc", "ncc_before")
"""Per-pair values summarised (mean and CI) beside the headline metric."""


def pair_scores(per_case: list[dict[str, Any]], labels: list[int]) -> dict[str, float]:
    """Each pair's headline score: the mean warped-label Dice over ``labels``, or NCC without labels."""
    import numpy as np

    if labels and all("scores" in c for c in per_case):
        return {c["case_id"]: float(np.mean([c["scores"][str(k)]["dice"] for k in labels])) for c in per_case}
    return {c["case_id"]: float(c["ncc"]) for c in per_case}


class Registration(Task):
    """Pairwise or atlas-to-subject registration of 2D or 3D images."""

    name = "registration"
    data_formats = ("auto", "learn2reg", "pairs")
    metrics = ("dice", "ncc")
    default_rungs = ("affine", "classical", "voxelmorph")
    rungs = {
        "affine": (_CLASSICAL, {"deformable": False}),
        "classical": _CLASSICAL,
        "voxelmorph": "automed.rungs.registration.voxelmorph:VoxelMorphRung",
    }
    recipe_options = frozenset({"atlas"})
    predictor = "automed.registration.predict:predict_registration"
    report_sections = "automed.report.registration:RegistrationReport"
    fitted_model = RegistrationModel

    def prepare(self, recipe: Recipe, data: Path, progress: bool) -> Prepared:
        from automed.data.registration import grid_fingerprint, open_registration

        with about(data):
            dataset = open_registration(data, recipe.data_format, recipe.atlas, random_state=recipe.random_state)
            fingerprint = grid_fingerprint(dataset)
        return Prepared(dataset, fingerprint, self._splits(dataset), fingerprint)

    def reopen(self, recipe: Recipe, data: Path, fingerprint_record: dict[str, Any],
               splits: dict[str, Any]) -> Opened:
        from automed.data.registration import open_registration

        dataset = open_registration(data, recipe.data_format, recipe.atlas, random_state=recipe.random_state)
        return Opened(dataset, fingerprint_record, splits)

    @staticmethod
    def _splits(dataset: Any) -> dict[str, Any]:
        evaluation = [p.case_id for p in dataset.evaluation]
        return {"kind": "pairs", "training_volumes": list(dataset.training), "evaluation_pairs": evaluation,
                "test_pairs": [p.case_id for p in dataset.test],
                "folds": [{"train": list(dataset.training), "val": evaluation}]}

    def comparison_cases(self, recipe: Recipe, opened: Opened) -> list[str]:
        return list(opened.splits["evaluation_pairs"])

    def summarize(self, outcome: RungOutcome, context: FitContext, recipe: Recipe) -> dict[str, Any]:
        from automed.metrics import summarize

        labels = context.fingerprint["labels"]
        scores = pair_scores(outcome.per_case, labels)
        by_dice = labels and all("scores" in c for c in outcome.per_case)
        metric = {"name": "dice" if by_dice else "ncc", "classes": [str(k) for k in labels] if by_dice else [],
                  **summarize(list(scores.values()), recipe.random_state)}
        per_class = {}
        if by_dice:
            for k in labels:
                dice = summarize([c["scores"][str(k)]["dice"] for c in outcome.per_case], recipe.random_state)
                hd95 = summarize([c["scores"][str(k)]["hd95"] for c in outcome.per_case], recipe.random_state)
                before = summarize([c["scores"][str(k)]["dice_before"] for c in outcome.per_case], recipe.random_state)
                per_class[str(k)] = {"dice_mean": dice["mean"], "dice_ci_low": dice["ci_low"],
                                     "dice_ci_high": dice["ci_high"], "hd95_mean": hd95["mean"],
                                     "hd95_ci_low": hd95["ci_low"], "hd95_ci_high": hd95["ci_high"],
                                     "dice_before_mean": before["mean"]}
        extra = {name: summarize([c[name] for c in outcome.per_case], recipe.random_state) for name in PAIR_FIELDS}
        return {"metric": metric, "per_class": per_class, "pairs": extra,
                "judged_by": "warped-label Dice" if by_dice else "the warped image's NCC (the pairs have no labels)"}

    def comparison(self, result: RungResult, comparison_cases: list[str], recipe: Recipe,
                   fingerprint: Any) -> tuple[dict[str, Any], GainOver]:
        from automed.metrics import summarize

        shared = set(comparison_cases)
        scores = {k: v for k, v in pair_scores(result.per_case, fingerprint["labels"]).items() if k in shared}
        metric = {"name": result.metric["name"], "classes": result.metric.get("classes", []),
                  **summarize(list(scores.values()), recipe.random_state)}
        judged = {"metric": metric, "cases": "evaluation pairs", "n": len(scores), "case_ids": sorted(scores)}
        return judged, partial(_gain, scores=scores, labels=fingerprint["labels"], random_state=recipe.random_state)


def _gain(base: RungResult, scores: dict[str, float], labels: list[int], random_state: int) -> dict[str, Any] | None:
    """Paired bootstrap difference of the per-pair ``scores`` over ``base``'s, on the pairs both registered."""
    from automed.statistics import paired_gain

    gain = paired_gain(pair_scores(base.per_case, labels), scores, random_state)
    return None if gain is None else {"vs": base.name, **gain}
