"""PNG figures of a report dict (matplotlib, Agg backend): per-case Dice and metric versus compute."""

from __future__ import annotations

import io
from typing import Any

from automed.report.recommend import recommendation_of
from automed.report.tables import comparison_metric, leaderboard_rows, metric_label, training_label

__all__ = ["dice_boxplot_png", "figure_png", "learning_curve_png", "pareto_front", "pareto_png", "pareto_points", "pyplot",
           "training_curves_png", "TRAINING_CURVES"]

TRAINING_CURVES = "training_curves.png"
"""The file, in each deep rung's folder, that holds its training curves."""


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
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for rank, p in enumerate(sorted(points, key=lambda q: q["fit_seconds"])):
        low, high = (p["comparison_mean"] if v is None else v for v in (p["comparison_ci_low"], p["comparison_ci_high"]))
        ax.errorbar(p["fit_seconds"], p["comparison_mean"], yerr=[[p["comparison_mean"] - low],
                    [high - p["comparison_mean"]]], fmt="o", capsize=3,
                    color="tab:green" if p["rung"] == chosen else "tab:blue")
        # neighbours along the time axis alternate above and below, so close points keep readable labels
        ax.annotate(p["rung"] + (" (recommended)" if p["rung"] == chosen else ""),
                    (p["fit_seconds"], p["comparison_mean"]), textcoords="offset points",
                    xytext=(6, 8 if rank % 2 == 0 else -14), fontsize=8,
                    arrowprops={"arrowstyle": "-", "color": "0.6", "lw": 0.5})
    front = pareto_front(points)
    ax.plot([p["fit_seconds"] for p in front], [p["comparison_mean"] for p in front], "--",
            drawstyle="steps-post", color="tab:orange", label="Pareto front")
    ax.set_xscale("log")
    ax.margins(x=0.2, y=0.1)
    ax.set_xlabel("fit seconds (log scale)")
    ax.set_ylabel(f"{metric_label(points[0]['metric'])} on the comparison cases")
    ax.set_title("metric vs compute")
    ax.legend(loc="lower right", fontsize=8)
    return figure_png(fig)


def dice_boxplot_png(report: dict[str, Any]) -> bytes | None:
    """Per-case Dice on the comparison cases, one box per scored class and finished rung (the same cases
    for every rung, background left out where it is not scored), sized for a page; None without per-case scores."""
    from automed.report.sections import comparison_ids

    done = [r for r in report["rungs"] if r["status"] == "done" and r.get("per_case")
            and all("scores" in c for c in r["per_case"])]
    if not done:
        return None
    scored = set((comparison_metric(done[0]) or {}).get("classes") or report["dataset"]["classes"].values())
    classes = {key: name for key, name in report["dataset"]["classes"].items() if name in scored}
    shared = set.intersection(*(set(comparison_ids(r)) for r in done))
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(min(11.0, 2.0 + 0.9 * len(classes) * len(done)), 3.6))
    data, labels = [], []
    for rung in done:
        for key, name in classes.items():
            data.append([c["scores"][key]["dice"] for c in rung["per_case"] if c["case_id"] in shared])
            labels.append(f"{rung['name']}\n{name}")
    ax.boxplot(data)
    ax.set_xticks(range(1, len(labels) + 1), labels, fontsize=7 if len(labels) > 8 else 8)
    ax.set_ylabel("Dice per case")
    values = [v for box in data for v in box]
    low = min(values) if values else 0.0
    ax.set_ylim(max(0.0, low - 0.05 * (1.0 - low) - 0.02), 1.0)
    ax.set_title(f"Dice per case on the same {len(shared)} comparison cases", fontsize=10)
    return figure_png(fig)


def training_curves_png(rung: dict[str, Any]) -> bytes | None:
    """A deep rung's training: validation metric (left axis) and training loss (right axis) per epoch, one
    line per training (fold or seed), the kept epoch marked; None for a rung without per-epoch history."""
    details = rung.get("details") or {}
    trainings = [t for t in details.get("trainings") or details.get("training") or [] if t.get("history")]
    if not trainings:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    loss_ax = ax.twinx() if any(t.get("train_loss") for t in trainings) else None
    for i, t in enumerate(trainings):
        colour = f"C{i % 10}"
        label = training_label(t, i)
        epochs = range(1, len(t["history"]) + 1)
        ax.plot(epochs, t["history"], "-o", color=colour, markersize=3, label=f"{label}: validation")
        if t.get("best_epoch") is not None and 0 <= t["best_epoch"] < len(t["history"]):
            ax.plot(t["best_epoch"] + 1, t["history"][t["best_epoch"]], "*", color=colour, markersize=12)
        if loss_ax is not None and t.get("train_loss"):
            loss_ax.plot(range(1, len(t["train_loss"]) + 1), t["train_loss"], "--", color=colour, alpha=0.6,
                         label=f"{label}: training loss")
    metric = "AUC" if any("best_val_auc" in t for t in trainings) else "Dice"
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"validation {metric} (solid; star: kept epoch)")
    if loss_ax is not None:
        loss_ax.set_ylabel("training loss (dashed)")
    ax.set_title(f"{rung['name']}: training curves", fontsize=10)
    handles, labels = ax.get_legend_handles_labels()
    if loss_ax is not None:
        more = loss_ax.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    ax.legend(handles, labels, loc="center right", fontsize=7)
    return figure_png(fig)


def learning_curve_png(report: dict[str, Any]) -> bytes | None:
    """The metric on the comparison cases (95% CI error bars) against the fraction of labelled cases, one line per
    rung."""
    curve = report.get("learning_curve")
    if not curve:
        return None
    plt = pyplot()
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
    ax.set_xlabel("fraction of labelled cases")
    ax.set_ylabel(f"{metric_label(curve['metric'])}, {curve.get('cases') or 'held-out test cases'}", fontsize=8)
    ax.set_title("Learning curve")
    ax.legend(fontsize=7)
    return figure_png(fig)


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()
