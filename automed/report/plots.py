"""PNG figures of a report dict (matplotlib, Agg backend): per-case Dice and metric versus compute."""

from __future__ import annotations

import io
from typing import Any

from automed.report.recommend import recommendation_of
from automed.report.tables import leaderboard_rows, metric_label

__all__ = ["dice_boxplot_png", "pareto_front", "pareto_png", "pareto_points"]


def pareto_points(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Finished rungs with a fit time and a comparison score: the leaderboard rows a Pareto plot can place."""
    return [row for row in leaderboard_rows(report) if row["status"] == "done"
            and (row["fit_seconds"] or 0) > 0 and row["comparison_mean"] is not None]


def pareto_front(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The points no other point beats on both axes (less fit time and a higher score), cheapest first."""
    front: list[dict[str, Any]] = []
    for point in sorted(points, key=lambda p: (p["fit_seconds"], -p["comparison_mean"])):
        if not front or point["comparison_mean"] > front[-1]["comparison_mean"]:
            front.append(point)
    return front


def pareto_png(report: dict[str, Any]) -> bytes | None:
    """Metric on the comparison cases (95% CI bars) against fit seconds (log scale), each rung labelled,
    the recommended one in green, the Pareto front drawn as a staircase; None when no rung can be placed."""
    points = pareto_points(report)
    if not points:
        return None
    chosen = recommendation_of(report)["rung"]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for p in points:
        low, high = (p["comparison_mean"] if v is None else v for v in (p["comparison_ci_low"], p["comparison_ci_high"]))
        ax.errorbar(p["fit_seconds"], p["comparison_mean"], yerr=[[p["comparison_mean"] - low],
                    [high - p["comparison_mean"]]], fmt="o", capsize=3,
                    color="tab:green" if p["rung"] == chosen else "tab:blue")
        ax.annotate(p["rung"] + (" (recommended)" if p["rung"] == chosen else ""), (p["fit_seconds"], p["comparison_mean"]), textcoords="offset points",
                    xytext=(6, 4), fontsize=9)
    front = pareto_front(points)
    ax.plot([p["fit_seconds"] for p in front], [p["comparison_mean"] for p in front], "--",
            drawstyle="steps-post", color="tab:orange", label="Pareto front")
    ax.set_xscale("log")
    ax.margins(x=0.2, y=0.1)
    ax.set_xlabel("fit seconds (log scale)")
    ax.set_ylabel(f"{metric_label(points[0]['metric'])} on the comparison cases")
    ax.set_title("metric vs compute")
    ax.legend(loc="lower right", fontsize=8)
    return _png(fig)


def dice_boxplot_png(report: dict[str, Any]) -> bytes | None:
    """Per-case Dice per class and finished rung (box plots); None when no rung has per-case scores."""
    done = [r for r in report["rungs"] if r["status"] == "done" and r.get("per_case")
            and "scores" in r["per_case"][0]]
    if not done:
        return None
    plt = _pyplot()
    classes = report["dataset"]["classes"]
    fig, ax = plt.subplots(figsize=(1.8 + 1.4 * len(classes) * len(done), 3.2))
    data, labels = [], []
    for rung in done:
        for key, name in classes.items():
            data.append([c["scores"][key]["dice"] for c in rung["per_case"]])
            labels.append(f"{rung['name']}\n{name}")
    ax.boxplot(data)
    ax.set_xticks(range(1, len(labels) + 1), labels, fontsize=8)
    ax.set_ylabel("Dice per case")
    ax.set_ylim(0, 1)
    return _png(fig)


def learning_curve_png(report: dict[str, Any]) -> bytes | None:
    """Test metric (95% CI error bars) against the fraction of labelled development cases, one line per rung."""
    curve = report.get("learning_curve")
    if not curve:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, points in curve["rungs"].items():
        scored = [p for p in points if p.get("metric") and p["metric"].get("mean") is not None]
        if not scored:
            continue
        x = [p["fraction"] for p in scored]
        y = [p["metric"]["mean"] for p in scored]
        low = [p["metric"]["mean"] - (p["metric"].get("ci_low") if p["metric"].get("ci_low") is not None
                                      else p["metric"]["mean"]) for p in scored]
        high = [(p["metric"].get("ci_high") if p["metric"].get("ci_high") is not None else p["metric"]["mean"])
                - p["metric"]["mean"] for p in scored]
        ax.errorbar(x, y, yerr=[low, high], marker="o", capsize=3, label=name)
    ax.set_xscale("log")
    ax.set_xlabel("fraction of labelled development cases")
    ax.set_ylabel(f"test {metric_label(curve['metric'])}")
    ax.set_title("Learning curve")
    ax.legend(fontsize=7)
    return _png(fig)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()
