"""The recommendation: the cheapest finished rung that is not significantly worse than the best one."""

from __future__ import annotations

from typing import Any

from automed.report.tables import (
    LIMITS,
    best_rung,
    comparison_metric,
    format_ci,
    format_gain,
    meets_constraints,
    metric_label,
    vram_bytes,
)
from automed.report.task_report import task_report

__all__ = ["DEFAULT_MIN_GAIN", "recommend", "recommendation_of"]

DEFAULT_MIN_GAIN = 0.005
"""Gain (in metric units) below which climbing to a costlier rung is not worth it, when the run sets none."""
CHEAPER = 0.8
"""A rung counts as cheaper than the best one when it fitted in at most this share of its seconds."""


def recommend(report: dict[str, Any], limits: dict[str, Any] | None = None) -> dict[str, Any]:
    """The rung to use and one sentence saying why, with numbers.

    Among the finished rungs that meet the limits (``report["constraints"]``, updated by ``limits``;
    the keys of :data:`~automed.report.tables.LIMITS`: peak VRAM, or the estimate when there was no
    GPU, fit seconds, predict seconds per case, peak memory), take the best by comparison score, then the cheapest rung (fitted in
    at most :data:`CHEAPER` of the best's seconds) the best does not clearly beat: the paired gain
    of the best over it has a 95% CI lower bound at most ``min_gain`` (:data:`DEFAULT_MIN_GAIN` when the
    run sets none). Classification uses the paired bootstrap gains stored with the best rung (against
    the classical rung and the best rung below it). Where no paired gain exists, the best rung is kept.

    Parameters
    ----------
    report : dict
        A report as built by :func:`automed.report.build.build_report` (``recommendation`` not needed).
    limits : dict, optional
        Limits to apply instead of the run's own (``{"max_predict_seconds": 2.0}``); None values lift one.

    Returns
    -------
    dict
        ``{"rung": name or None, "sentence": str}``.

    Examples
    --------
    >>> recommend(report)["sentence"]  # doctest: +SKIP
    'Use unet3d: Dice 0.884 [0.871, 0.896] on 40 validation cases of fold 0, +0.043 [0.031, 0.055] over ...'
    """
    constraints = report.get("constraints") or {}
    applied = {key: constraints.get(key) for key in LIMITS} | (limits or {})
    min_gain = DEFAULT_MIN_GAIN if constraints.get("min_gain") is None else constraints["min_gain"]
    rungs = report["rungs"]
    notes = [note for note in (_why_not(r, applied) for r in rungs) if note]
    best_name = best_rung(rungs, applied)
    if best_name is None:
        finished = any(r["status"] == "done" for r in rungs)
        head = "No finished rung meets the constraints" if finished else "No rung finished"
        return {"rung": None, "sentence": "; ".join([head, *notes]) + "."}
    by_name = {r["name"]: r for r in rungs}
    task = task_report(report)
    best = chosen = by_name[best_name]
    gain_of_best = None
    for rung in sorted(_cheaper(rungs, best, applied), key=lambda r: r["cost"]["fit_seconds"]):
        gain = task.paired_gain(report, base=rung, new=best)
        if gain is not None and gain["ci_low"] is not None and gain["ci_low"] <= min_gain:
            chosen, gain_of_best = rung, gain
            break
    parts = [f"Use {chosen['name']}: {_score_text(report, chosen)}{_baseline_text(chosen, by_name)}"]
    if gain_of_best is not None:
        whose = f"{chosen['name']}'s"
        parts.append(f"{best['name']}'s gain over it is {_gain_text(gain_of_best)} on the same {gain_of_best['n']} cases "
                     f"(not clearly above the {min_gain:g} minimum gain){_at_ratio(best, chosen, whose)}")
    return {"rung": chosen["name"], "sentence": "; ".join(parts + notes) + "."}


def recommendation_of(report: dict[str, Any]) -> dict[str, Any]:
    """The report's stored ``recommendation``, or :func:`recommend`'s for report dicts written before it existed."""
    return report.get("recommendation") or recommend(report)


def _cheaper(rungs: list[dict[str, Any]], best: dict[str, Any], limits: dict[str, Any]) -> list[dict[str, Any]]:
    """Finished rungs within the constraints that fitted in at most :data:`CHEAPER` of ``best``'s seconds."""
    limit = (best.get("cost") or {}).get("fit_seconds")
    if limit is None:
        return []
    return [r for r in rungs if r is not best and meets_constraints(r, limits)
            and (r.get("cost") or {}).get("fit_seconds") is not None and r["cost"]["fit_seconds"] <= CHEAPER * limit]


def _score_text(report: dict[str, Any], rung: dict[str, Any]) -> str:
    """``"Dice 0.884 [0.871, 0.896] on 40 validation cases of fold 0"``."""
    comparison, metric = rung.get("comparison") or {}, comparison_metric(rung)
    if comparison.get("metric"):
        where = f"{comparison.get('n', metric.get('n'))} {comparison.get('cases') or 'comparison cases'}"
    else:  # runs that recorded no comparison
        where = task_report(report).scored_cases(report, metric)
    return f"{metric_label(metric.get('name'))} {format_ci(metric['mean'], metric.get('ci_low'), metric.get('ci_high'))} on {where}"


def _baseline_text(rung: dict[str, Any], by_name: dict[str, dict[str, Any]]) -> str:
    """``", +0.043 [0.031, 0.055] over classical at 3.9x its fit time"``, or the fit time alone."""
    gain = rung.get("gain_vs_baseline") or {}
    base = by_name.get(gain.get("vs"))
    if gain.get("mean") is None or base is None or base is rung:
        seconds = (rung.get("cost") or {}).get("fit_seconds")
        return "" if seconds is None else f", fitted in {seconds:.0f} s"
    return f", {_gain_text(gain)} over {base['name']}{_at_ratio(rung, base, 'its')}"


def _gain_text(gain: dict[str, Any]) -> str:
    return format_gain(gain["mean"], gain.get("ci_low"), gain.get("ci_high"))


def _at_ratio(rung: dict[str, Any], reference: dict[str, Any], whose: str) -> str:
    """``" at 3.9x its fit time"`` (``rung / reference``); empty where either fit time is unknown."""
    seconds, base = ((r.get("cost") or {}).get("fit_seconds") for r in (rung, reference))
    return "" if seconds is None or not base else f" at {seconds / base:.1f}x {whose} fit time"


def _why_not(rung: dict[str, Any], limits: dict[str, Any]) -> str | None:
    """Why ``rung`` cannot be recommended (skipped, not run, over a limit); None when it can."""
    reason = (rung.get("reason") or "").strip().rstrip(".")
    if rung["status"] != "done":
        verb = {"skipped": "was skipped", "not run": "was not run"}.get(rung["status"], rung["status"])
        return f"{rung['name']} {verb}" + (f" ({reason})" if reason else "")
    cost = rung.get("cost") or {}
    kind = "peak" if cost.get("peak_vram_bytes") is not None else "estimated training"
    gib = 2**30
    checks = [("max_vram_bytes", vram_bytes(rung), lambda v: f"{kind} VRAM {v / gib:.1f} GiB", lambda v: f"{v / gib:.1f} GiB"),
              ("max_fit_seconds", cost.get("fit_seconds"), lambda v: f"fit {v:.0f} s", lambda v: f"{v:.0f} s"),
              ("max_predict_seconds", cost.get("predict_seconds_per_case"), lambda v: f"predict {v:.2f} s per case",
               lambda v: f"{v:.2f} s"),
              ("max_rss_bytes", cost.get("peak_rss_bytes"), lambda v: f"peak memory {v / gib:.1f} GiB",
               lambda v: f"{v / gib:.1f} GiB")]
    over = [f"{measured(used)} > {allowed(limits[key])} allowed" for key, used, measured, allowed in checks
            if limits.get(key) is not None and used is not None and used > limits[key]]
    return f"{rung['name']} was excluded ({'; '.join(over)})" if over else None
