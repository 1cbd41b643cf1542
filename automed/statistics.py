"""Segmentation statistics over cases: the headline Dice with its CI, per class and per site, and
paired gains between two rungs scored on the same cases."""

from __future__ import annotations

from typing import Any

import numpy as np

from automed.metrics import FOREGROUND, summarize

__all__ = ["case_scores", "paired_gain", "per_site_dice", "summarize_segmentation"]


def summarize_segmentation(per_case: list[dict[str, Any]], classes: dict[int, str], include_background: bool,
                           random_state: int = 0) -> tuple[dict[str, Any], dict[str, Any]]:
    """Headline Dice (mean over classes per case, then over cases, with bootstrap CI) and per-class stats.

    Returns
    -------
    metric : dict
        ``{"name": "dice", "mean", "std", "ci_low", "ci_high", "n", "classes"}``.
    per_class : dict
        ``{class_name: {"dice_mean", "dice_std", "dice_ci_low", "dice_ci_high",
        "hd95_mean", "hd95_ci_low", "hd95_ci_high", "hd95_n_undefined"}}``, and the union of
        the foreground classes as ``"all foreground (union)"`` where the cases were scored on it
        (two or more foreground classes; BraTS's whole tumour).
    """
    scored = [c for c in sorted(classes) if include_background or c != 0]
    per_class = {}
    keys = [(str(c), classes[c]) for c in sorted(classes)]
    if per_case and all(FOREGROUND in case["scores"] for case in per_case):
        keys.append((FOREGROUND, "all foreground (union)"))
    for key, name in keys:
        dice = summarize([case["scores"][key]["dice"] for case in per_case], random_state)
        hd95 = summarize([case["scores"][key]["hd95"] for case in per_case], random_state)
        per_class[name] = {
            "dice_mean": dice["mean"], "dice_std": dice["std"], "dice_ci_low": dice["ci_low"],
            "dice_ci_high": dice["ci_high"], "hd95_mean": hd95["mean"], "hd95_ci_low": hd95["ci_low"],
            "hd95_ci_high": hd95["ci_high"], "hd95_n_undefined": hd95["n_undefined"],
        }
    case_means = [float(np.mean([case["scores"][str(c)]["dice"] for c in scored])) for case in per_case]
    overall = summarize(case_means, random_state)
    metric = {"name": "dice", "mean": overall["mean"], "std": overall["std"], "ci_low": overall["ci_low"],
              "ci_high": overall["ci_high"], "n": overall["n"], "classes": [classes[c] for c in scored]}
    return metric, per_class


def per_site_dice(per_case: list[dict[str, Any]], sites: dict[str, str], classes: dict[int, str],
                  include_background: bool, random_state: int = 0) -> dict[str, dict[str, Any]]:
    """The headline Dice of :func:`summarize_segmentation` over the cases of each site (``case id -> site``)."""
    by_site: dict[str, list[dict[str, Any]]] = {}
    for case in per_case:
        if case["case_id"] in sites:
            by_site.setdefault(sites[case["case_id"]], []).append(case)
    return {site: summarize_segmentation(cases, classes, include_background, random_state)[0]
            for site, cases in sorted(by_site.items())}


def case_scores(per_case: list[dict[str, Any]], scored_classes: list[int]) -> dict[str, float]:
    """Per-case headline score: Dice averaged over ``scored_classes``, keyed by case id."""
    return {case["case_id"]: float(np.mean([case["scores"][str(c)]["dice"] for c in scored_classes]))
            for case in per_case}


def paired_gain(base: dict[str, float], new: dict[str, float], random_state: int = 0) -> dict[str, Any] | None:
    """Mean per-case difference ``new - base`` on the cases both were scored on, with bootstrap 95% CI.

    Returns
    -------
    dict or None
        ``{"mean", "ci_low", "ci_high", "n"}``; None when no case is shared.
    """
    shared = sorted(set(base) & set(new))
    if not shared:
        return None
    diff = summarize([new[c] - base[c] for c in shared], random_state)
    return {"mean": diff["mean"], "ci_low": diff["ci_low"], "ci_high": diff["ci_high"], "n": diff["n"]}
