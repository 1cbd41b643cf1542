"""Render a report dict to Markdown and to a self-contained HTML page."""

from __future__ import annotations

import base64
import io
from typing import Any

from automed.report.tables import format_ci, leaderboard_rows

__all__ = ["to_markdown", "to_html"]


def _num(value: Any, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _bytes(value: Any) -> str:
    return "—" if value is None else f"{value / 2**30:.2f} GiB"


def _ci(mean: Any, low: Any, high: Any, digits: int = 3) -> str:
    return format_ci(mean, low, high, digits)


def _summary_sentence(report: dict[str, Any]) -> str:
    best = report.get("best_rung")
    if best is None:
        return "No rung finished."
    rung = next(r for r in report["rungs"] if r["name"] == best)
    m = rung["metric"]
    where = ("held-out test cases" if report["task"] == "classification"
             else f"cases, {report['n_folds']}-fold cross-validation")
    return (f"Use **{best}**: {m['name']} {_ci(m['mean'], m['ci_low'], m['ci_high'])} (95% bootstrap CI over "
            f"{m['n']} {where}), fitted in {_num(rung['cost']['fit_seconds'], 0)} s.")


def _dataset_sentence(report: dict[str, Any]) -> str:
    ds = report["dataset"]
    classes = list(ds["classes"].values())
    if report["task"] == "classification":
        return (f"Dataset `{ds['path']}` ({ds['format']}): {ds['n_cases']} images, {ds['dims']}D, classes {classes}, "
                f"counts {ds['class_counts']}, {'official' if ds['official_split'] else 'held-out'} test split.")
    return (f"Dataset `{ds['path']}` ({ds['format']}): {ds['n_cases']} cases, {ds['dims']}D, {ds['modality']}, "
            f"classes {classes}, median shape {ds['median_shape']}, median spacing {ds['median_spacing']}.")


def _leaderboard(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    head = ["rung", "status", "metric [95% CI]", "fit s", "peak RSS", "peak VRAM", "params", "predict s/case"]
    rows = [[r["rung"], r["status"], _ci(r["mean"], r["ci_low"], r["ci_high"]), _num(r["fit_seconds"], 0),
             _bytes(r["peak_rss_bytes"]), _bytes(r["peak_vram_bytes"]),
             "—" if r["n_params"] is None else f"{r['n_params']:,}", _num(r["predict_seconds_per_case"], 2)]
            for r in leaderboard_rows(report)]
    return head, rows


def _per_class(rung: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    stats = rung.get("per_class") or {}
    if any("recall" in v for v in stats.values()):
        return (["class", "recall", "precision", "n (test)"],
                [[name, _num(v["recall"]), _num(v["precision"]), str(v["n"])] for name, v in stats.items()])
    head = ["class", "Dice [95% CI]", "HD95 mm [95% CI]", "HD95 undefined"]
    rows = [[name, _ci(s["dice_mean"], s["dice_ci_low"], s["dice_ci_high"]),
             _ci(s["hd95_mean"], s["hd95_ci_low"], s["hd95_ci_high"], 2), str(s["hd95_n_undefined"])]
            for name, s in stats.items()]
    return head, rows


def _classification_tables(rung: dict[str, Any], classes: list[str]) -> list[tuple[str, tuple[list[str], list[list[str]]]]]:
    """Test scores, confusion matrix, per-site scores and top features of a classification rung."""
    test = rung["test"]
    tables = [("Test set", (["metric", "value [95% CI]"],
                            [[k, _ci(test[k]["mean"], test[k]["ci_low"], test[k]["ci_high"])]
                             for k in ("auc", "accuracy", "balanced_accuracy")]))]
    tables.append(("Confusion matrix (rows: truth, columns: prediction)",
                   (["truth \\ predicted"] + classes,
                    [[c] + [str(v) for v in row] for c, row in zip(classes, test["confusion_matrix"])])))
    if rung.get("per_site"):
        tables.append(("Per site", (["site", "n", "AUC [95% CI]", "accuracy"],
                                    [[site, str(v["n"]), _ci(v["auc"]["mean"], v["auc"]["ci_low"], v["auc"]["ci_high"]),
                                      _num(v["accuracy"]["mean"])] for site, v in rung["per_site"].items()])))
    tables.append(("Top features", (["feature", "importance"],
                                    [[f["feature"], _num(f["importance"])] for f in rung.get("top_features", [])[:10]])))
    return tables


def _postprocessing_text(steps: list[dict[str, Any]], classes: dict[str, str]) -> str:
    return ", ".join(f"{s['op']} on {classes.get(str(s['class']), s['class'])}" for s in steps) or "none helped"


def _md_table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def to_markdown(report: dict[str, Any]) -> str:
    """Markdown report: summary sentence, leaderboard, per-rung details."""
    ds = report["dataset"]
    parts = [f"# automed report: {report['task']}", _summary_sentence(report), _dataset_sentence(report),
             "## Leaderboard", _md_table(*_leaderboard(report))]
    for rung in report["rungs"]:
        if rung["status"] != "done":
            continue
        parts += [f"## {rung['name']}: per class", _md_table(*_per_class(rung))]
        if report["task"] == "classification":
            if rung.get("threshold") is not None:
                parts.append(f"Decision threshold on p({list(ds['classes'].values())[1]}), chosen on out-of-fold "
                             f"development predictions: {rung['threshold']:.3f}.")
            for title, table in _classification_tables(rung, list(ds["classes"].values())):
                parts += [f"### {title}", _md_table(*table)]
        else:
            chosen = _postprocessing_text(rung.get("postprocessing") or [], ds["classes"])
            parts.append(f"Post-processing chosen by cross-validation: {chosen}.")
    hw = report["hardware"]
    parts.append(f"Seed {report['seed']}; {hw['n_cores']} cores, {_bytes(hw['ram_bytes'])} RAM, "
                 f"GPU {hw['gpu']['name'] if hw['gpu'] else 'none'}; automed {report['versions'].get('automed')}.")
    return "\n\n".join(parts) + "\n"


def _dice_plot(report: dict[str, Any]) -> str | None:
    """Base64 PNG: per-case Dice per class and rung (box plots)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in report["rungs"] if r["status"] == "done" and r.get("per_case")
            and "scores" in r["per_case"][0]]
    if not done:
        return None
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
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def to_html(report: dict[str, Any]) -> str:
    """Self-contained HTML page (plot embedded), rendered from the report dict alone."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("automed.report", "templates"),
                             autoescape=jinja2.select_autoescape(["html"]))
    classes = report["dataset"]["classes"]
    rungs = [{"name": r["name"], "table": _per_class(r),
              "postprocessing": _postprocessing_text(r.get("postprocessing") or [], classes),
              "extra": _classification_tables(r, list(classes.values())) if report["task"] == "classification" else [],
              "threshold": r.get("threshold")}
             for r in report["rungs"] if r["status"] == "done"]
    summary = _summary_sentence(report).replace("**", "")
    return env.get_template("report.html").render(
        report=report, summary=summary, dataset=_dataset_sentence(report).replace("`", ""), leaderboard=_leaderboard(report), rungs=rungs, plot=_dice_plot(report),
    )
