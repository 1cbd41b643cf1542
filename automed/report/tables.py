"""Pure tables from rung results: the leaderboard, constraints, and how numbers are shown."""

from __future__ import annotations

from typing import Any

__all__ = ["LIMITS", "best_rung", "comparison_metric", "format_ci", "format_gain", "format_number", "leaderboard_rows",
           "meets_constraints", "metric_label", "training_label", "vram_bytes"]


def comparison_metric(rung: dict[str, Any]) -> dict[str, Any] | None:
    """The metric a rung is ranked on: on the cases every rung is judged on when it has one, else its own."""
    return (rung.get("comparison") or {}).get("metric") or rung.get("metric")


def vram_bytes(rung: dict[str, Any]) -> int | None:
    """Peak VRAM measured while fitting; without a GPU, the estimated training VRAM (None when neither is known)."""
    cost = rung.get("cost") or {}
    return _first_known(cost.get("peak_vram_bytes"), _est_train_vram_bytes(rung))


def _est_train_vram_bytes(rung: dict[str, Any]) -> int | None:
    return _first_known((rung.get("cost") or {}).get("est_train_vram_bytes"),
                        (rung.get("estimate") or {}).get("train_vram_bytes"))


def _first_known(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def leaderboard_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One flat row per rung: metric with CI, score on the comparison cases, gains and the cost columns.

    ``mean``/``ci_low``/``ci_high`` are over the rung's own evaluated cases; ``comparison_*`` are on the
    cases every rung is judged on (the rung's own metric where it reports none); ``gain_vs_baseline_*``
    and ``gain_vs_prev_*`` are paired per-case differences (``gain_vs_prev`` names the rung it is against).
    """
    rows = []
    for rung in report["rungs"]:
        metric, cost = rung.get("metric") or {}, rung.get("cost") or {}
        comparison, shared = rung.get("comparison") or {}, comparison_metric(rung) or {}
        baseline, prev = rung.get("gain_vs_baseline") or {}, rung.get("gain_vs_prev") or {}
        rows.append({
            "rung": rung["name"], "status": rung["status"], "reason": rung.get("reason"),
            "shrunk": rung.get("shrunk") or [], "metric": metric.get("name"),
            "mean": metric.get("mean"), "ci_low": metric.get("ci_low"), "ci_high": metric.get("ci_high"),
            "comparison_mean": shared.get("mean"), "comparison_ci_low": shared.get("ci_low"),
            "comparison_ci_high": shared.get("ci_high"), "comparison_n": comparison.get("n", shared.get("n")),
            "comparison_cases": comparison.get("cases"),
            "gain_vs_baseline": baseline.get("vs"), "gain_vs_baseline_mean": baseline.get("mean"),
            "gain_vs_baseline_ci_low": baseline.get("ci_low"), "gain_vs_baseline_ci_high": baseline.get("ci_high"),
            "gain_vs_prev": prev.get("vs"), "gain_vs_prev_mean": prev.get("mean"),
            "gain_vs_prev_ci_low": prev.get("ci_low"), "gain_vs_prev_ci_high": prev.get("ci_high"),
            "fit_seconds": cost.get("fit_seconds"), "search_seconds": cost.get("search_seconds"),
            "final_fit_seconds": cost.get("final_fit_seconds"), "core_hours": cost.get("core_hours"),
            "gpu_hours": cost.get("gpu_hours"), "n_trials": cost.get("n_trials"),
            "n_trials_pruned": cost.get("n_trials_pruned"), "device": cost.get("device"),
            "peak_rss_bytes": cost.get("peak_rss_bytes"), "peak_vram_bytes": cost.get("peak_vram_bytes"),
            "est_train_vram_bytes": _est_train_vram_bytes(rung),
            "n_params": cost.get("n_params"), "predict_seconds_per_case": cost.get("predict_seconds_per_case"),
        })
    return rows


LIMITS = ("max_vram_bytes", "max_fit_seconds", "max_predict_seconds", "max_rss_bytes")
"""The limits a rung can be held to: peak VRAM (or its estimate), fit seconds, predict seconds per
case and peak resident memory; the keys :func:`meets_constraints` reads from a constraints dict."""


def meets_constraints(rung: dict[str, Any], limits: dict[str, Any] | None = None) -> bool:
    """Whether ``rung`` finished with a score and within ``limits`` (keys of :data:`LIMITS`; a
    missing or None limit, or an unknown measurement, does not exclude)."""
    limits = limits or {}
    cost = rung.get("cost") or {}
    measured = {"max_vram_bytes": vram_bytes(rung), "max_fit_seconds": cost.get("fit_seconds"),
                "max_predict_seconds": cost.get("predict_seconds_per_case"),
                "max_rss_bytes": cost.get("peak_rss_bytes")}
    return (rung["status"] == "done" and (comparison_metric(rung) or {}).get("mean") is not None
            and all(limits.get(key) is None or measured[key] is None or measured[key] <= limits[key]
                    for key in LIMITS))


def best_rung(rungs: list[dict[str, Any]], limits: dict[str, Any] | None = None) -> str | None:
    """Name of the finished rung with the highest score that meets ``limits``.

    The score is the :func:`comparison_metric`, the limits those of :func:`meets_constraints`.
    Unlike :func:`automed.report.recommend.recommend`, this ignores cost: it is the top of the leaderboard.
    """
    candidates = [r for r in rungs if meets_constraints(r, limits)]
    return max(candidates, key=lambda r: comparison_metric(r)["mean"])["name"] if candidates else None


def format_ci(mean: float | None, low: float | None, high: float | None, digits: int = 3) -> str:
    """``"0.841 [0.833, 0.848]"``; a dash where a value is undefined."""
    def num(value: float | None) -> str:
        return "—" if value is None else f"{value:.{digits}f}"

    return "—" if mean is None else f"{num(mean)} [{num(low)}, {num(high)}]"


def training_label(training: dict[str, Any], index: int) -> str:
    """``"fold 0"``, ``"fold 0, member 1"`` (a deep rung's trainings) or ``"seed 3"`` (a classifier's)."""
    if "fold" not in training:
        return f"seed {training.get('seed', index)}"
    member = training.get("member", 0)
    return f"fold {training['fold']}" + (f", member {member}" if member else "")


def metric_label(name: str | None) -> str:
    """How a metric is written for people: ``"dice"`` -> ``"Dice"``, ``"auc"`` -> ``"AUC"``."""
    return {"dice": "Dice", "auc": "AUC"}.get(name or "", name or "metric")


def format_number(value: float | None, digits: int = 3) -> str:
    """``value`` to ``digits`` decimals; a dash where unknown."""
    return "—" if value is None else f"{value:.{digits}f}"


def format_gain(mean: float | None, low: float | None, high: float | None, digits: int = 3) -> str:
    """A signed difference with its CI, ``"+0.043 [0.031, 0.055]"``; a dash where undefined."""
    text = format_ci(mean, low, high, digits)
    return text if mean is None or mean < 0 else "+" + text
