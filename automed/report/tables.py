"""Pure tables from rung results: metric summaries and the leaderboard."""

from __future__ import annotations

from typing import Any

import numpy as np

from automed.metrics import summarize

__all__ = ["best_rung", "format_ci", "leaderboard_rows", "summarize_segmentation"]


def summarize_segmentation(per_case: list[dict[str, Any]], classes: dict[int, str], include_background: bool,
                           random_state: int = 0) -> tuple[dict[str, Any], dict[str, Any]]:
    """Headline Dice (mean over classes per case, then over cases, with bootstrap CI) and per-class stats.

    Returns
    -------
    metric : dict
        ``{"name": "dice", "mean", "std", "ci_low", "ci_high", "n", "classes"}``.
    per_class : dict
        ``{class_name: {"dice_mean", "dice_std", "dice_ci_low", "dice_ci_high",
        "hd95_mean", "hd95_ci_low", "hd95_ci_high", "hd95_n_undefined"}}``.
    """
    scored = [c for c in sorted(classes) if include_background or c != 0]
    per_class = {}
    for c in sorted(classes):
        dice = summarize([case["scores"][str(c)]["dice"] for case in per_case], random_state)
        hd95 = summarize([case["scores"][str(c)]["hd95"] for case in per_case], random_state)
        per_class[classes[c]] = {
            "dice_mean": dice["mean"], "dice_std": dice["std"], "dice_ci_low": dice["ci_low"],
            "dice_ci_high": dice["ci_high"], "hd95_mean": hd95["mean"], "hd95_ci_low": hd95["ci_low"],
            "hd95_ci_high": hd95["ci_high"], "hd95_n_undefined": hd95["n_undefined"],
        }
    case_means = [float(np.mean([case["scores"][str(c)]["dice"] for c in scored])) for case in per_case]
    overall = summarize(case_means, random_state)
    metric = {"name": "dice", "mean": overall["mean"], "std": overall["std"], "ci_low": overall["ci_low"],
              "ci_high": overall["ci_high"], "n": overall["n"], "classes": [classes[c] for c in scored]}
    return metric, per_class


def leaderboard_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One flat row per rung: metric with CI and the cost columns."""
    rows = []
    for rung in report["rungs"]:
        metric, cost = rung.get("metric") or {}, rung.get("cost") or {}
        rows.append({
            "rung": rung["name"], "status": rung["status"], "metric": metric.get("name"),
            "mean": metric.get("mean"), "ci_low": metric.get("ci_low"), "ci_high": metric.get("ci_high"),
            "fit_seconds": cost.get("fit_seconds"), "peak_rss_bytes": cost.get("peak_rss_bytes"),
            "peak_vram_bytes": cost.get("peak_vram_bytes"), "n_params": cost.get("n_params"),
            "predict_seconds_per_case": cost.get("predict_seconds_per_case"),
        })
    return rows


def best_rung(rungs: list[dict[str, Any]], max_vram_bytes: int | None = None,
              max_fit_seconds: float | None = None) -> str | None:
    """Name of the finished rung with the highest metric that meets the constraints."""
    def fits(rung: dict[str, Any]) -> bool:
        cost = rung.get("cost") or {}
        vram = cost.get("peak_vram_bytes")
        return (rung["status"] == "done" and (rung.get("metric") or {}).get("mean") is not None
                and (max_vram_bytes is None or vram is None or vram <= max_vram_bytes)
                and (max_fit_seconds is None or cost.get("fit_seconds", 0) <= max_fit_seconds))

    candidates = [r for r in rungs if fits(r)]
    return max(candidates, key=lambda r: r["metric"]["mean"])["name"] if candidates else None


def format_ci(mean: float | None, low: float | None, high: float | None, digits: int = 3) -> str:
    """``"0.841 [0.833, 0.848]"``; a dash where a value is undefined."""
    def num(value: float | None) -> str:
        return "—" if value is None else f"{value:.{digits}f}"

    return "—" if mean is None else f"{num(mean)} [{num(low)}, {num(high)}]"
