"""Judge a finished rung against those below it: paired gains with CIs, and when to stop climbing."""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from automed.recipe import Recipe

__all__ = ["judge"]

log = logging.getLogger("automed")


def judge(result: dict[str, Any], done: list[dict[str, Any]], classes: list[int], comparison: list[str],
          recipe: Recipe) -> dict[str, Any]:
    """The judged fields of a finished rung's ``result``: the metric on the comparison cases,
    the paired gains over the baseline and the best rung so far (and over the rung it names in
    ``details["compare_with"]``) and, when gains stopped, why climbing stops."""
    if recipe.task == "classification":
        judged: dict[str, Any] = {"comparison": {"metric": result["metric"], "cases": "held-out test cases",
                                                 "n": result["metric"]["n"],
                                                 "case_ids": [c["case_id"] for c in result["per_case"]]}}
        gain_over = partial(_classification_gain, result=result, recipe=recipe)
    else:
        from automed.metrics import summarize
        from automed.report.tables import case_scores

        shared = set(comparison)
        scores = {k: v for k, v in case_scores(result["per_case"], classes).items() if k in shared}
        metric = {"name": result["metric"]["name"], "classes": result["metric"]["classes"],
                  **summarize(list(scores.values()), recipe.random_state)}
        cases = "every case (all folds)" if recipe.cv == "full" else "validation cases of fold 0"
        judged = {"comparison": {"metric": metric, "cases": cases, "n": len(scores), "case_ids": sorted(scores)}}
        gain_over = partial(_segmentation_gain, scores=scores, classes=classes, recipe=recipe)
    judged["gain_vs_baseline"] = judged["gain_vs_prev"] = None
    if not done:
        return judged
    best = max(done, key=lambda r: r["comparison"]["metric"]["mean"])
    judged["gain_vs_baseline"] = gain_over(done[0])
    judged["gain_vs_prev"] = gain = gain_over(best)
    reference = next((r for r in done if r["name"] == result["details"].get("compare_with")), None)
    if reference is not None:  # e.g. ssl beside the same network trained from scratch
        judged["gain_vs_reference"] = gain_over(reference)
    if (not recipe.full_ladder and gain is not None and gain["ci_high"] is not None
            and gain["ci_high"] < recipe.min_gain):
        judged["stops_climb"] = (f"climbing stopped after {result['name']}: its gain over {best['name']} was "
                                 f"{gain['mean']:+.3f} [95% CI {gain['ci_low']:+.3f}, {gain['ci_high']:+.3f}], "
                                 f"below min_gain {recipe.min_gain} with 95% confidence (--full-ladder climbs on).")
        log.info(judged["stops_climb"])
    return judged


def _segmentation_gain(base: dict[str, Any], scores: dict[str, float], classes: list[int],
                       recipe: Recipe) -> dict[str, Any] | None:
    from automed.report.tables import case_scores, paired_gain

    gain = paired_gain(case_scores(base["per_case"], classes), scores, recipe.random_state)
    return None if gain is None else {"vs": base["name"], **gain}


def _classification_gain(base: dict[str, Any], result: dict[str, Any], recipe: Recipe) -> dict[str, Any] | None:
    """Paired bootstrap difference of the recipe's metric on the test cases both rungs scored."""
    import numpy as np

    from automed.metrics import paired_classification_gain

    theirs = {c["case_id"]: c for c in base["per_case"]}
    mine = [c for c in result["per_case"] if c["case_id"] in theirs]
    if not mine:
        return None
    classes = list(result["per_class"])  # class names in the dataset's order
    y = np.array([classes.index(c["label"]) for c in mine])
    gain = paired_classification_gain(y, np.array([theirs[c["case_id"]]["proba"] for c in mine]),
                                      np.array([c["proba"] for c in mine]), base.get("threshold"),
                                      result.get("threshold"), recipe.metric, recipe.random_state)
    return {"vs": base["name"], **gain}
