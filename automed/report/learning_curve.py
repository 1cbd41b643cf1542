"""The report's learning curve: each rung's metric on the comparison cases against the labelled cases it was fitted
on, and the answer to "more labels or a bigger model?": what doubling the labels would gain, fitted, beside what the
next rung gained."""

from __future__ import annotations

from typing import Any

from automed.report.tables import format_ci, format_gain
from automed.report.task_report import Section

__all__ = ["LEARNING_CURVE_PICTURE", "learning_curve_sections"]

LEARNING_CURVE_PICTURE = "learning_curve.png"


def learning_curve_sections(report: dict[str, Any]) -> list[Section]:
    """The learning-curve section (none when the run drew no curve)."""
    curve = report.get("learning_curve")
    if not curve:
        return []
    head = ["rung"] + [f"{f:g} of labels" for f in curve["fractions"]]
    rows = []
    for name, points in curve["rungs"].items():
        cells = []
        for point in points:
            metric = point.get("metric") or {}
            cells.append("skipped" if point.get("skipped") else
                         f"{format_ci(metric.get('mean'), metric.get('ci_low'), metric.get('ci_high'))} "
                         f"(n={point['n_dev']})")
        rows.append([name] + cells)
    text = (f"Each finished rung refitted on fractions of the labelled cases (n: the cases it learnt from) and "
            f"scored on the same {curve.get('cases') or 'held-out test cases'}.")
    answer = _answer(report, curve)
    return [Section("Learning curve", f"{text} {answer}".strip(), (head, rows),
                    (("the metric against the fraction of labelled cases", LEARNING_CURVE_PICTURE),))]


def _answer(report: dict[str, Any], curve: dict[str, Any]) -> str:
    """One sentence per rung: what doubling its labels would gain, beside what the next finished rung gained."""
    finished = [r for r in report["rungs"] if r["status"] == "done"]
    sentences = []
    for i, rung in enumerate(finished):
        estimate = (curve.get("doubling") or {}).get(rung["name"])
        if estimate is None:
            continue
        sentence = (f"{rung['name']}: twice its {estimate['n']} labelled cases would gain about "
                    f"{format_gain(estimate['gain'], estimate['ci_low'], estimate['ci_high'])} (a power law fitted to "
                    f"{estimate['n_points']} points)")
        later = next((r for r in finished[i + 1:] if (r.get("gain_vs_prev") or {}).get("vs") == rung["name"]), None)
        if later is not None:
            gain = later["gain_vs_prev"]
            sentence += (f"; the next rung, {later['name']}, gained "
                         f"{format_gain(gain['mean'], gain.get('ci_low'), gain.get('ci_high'))} over it")
        sentences.append(sentence + ".")
    if not sentences:
        return ""
    return "More labels or a bigger model? " + " ".join(sentences)
