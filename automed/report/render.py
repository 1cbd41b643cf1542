"""Render a report dict to Markdown and to a self-contained HTML page."""

from __future__ import annotations

import base64
import io
from typing import Any

from automed.report.tables import leaderboard_rows

__all__ = ["to_markdown", "to_html"]


def _num(value: Any, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _bytes(value: Any) -> str:
    return "—" if value is None else f"{value / 2**30:.2f} GiB"


def _ci(mean: Any, low: Any, high: Any, digits: int = 3) -> str:
    if mean is None:
        return "—"
    return f"{mean:.{digits}f} [{_num(low, digits)}, {_num(high, digits)}]"


def _summary_sentence(report: dict[str, Any]) -> str:
    best = report.get("best_rung")
    if best is None:
        return "No rung finished."
    rung = next(r for r in report["rungs"] if r["name"] == best)
    m = rung["metric"]
    return (f"Use **{best}**: mean {m['name']} {_ci(m['mean'], m['ci_low'], m['ci_high'])} (95% bootstrap CI over "
            f"{m['n']} cases, {report['n_folds']}-fold cross-validation), fitted in "
            f"{_num(rung['cost']['fit_seconds'], 0)} s.")


def _leaderboard(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    head = ["rung", "status", "metric [95% CI]", "fit s", "peak RSS", "peak VRAM", "params", "predict s/case"]
    rows = [[r["rung"], r["status"], _ci(r["mean"], r["ci_low"], r["ci_high"]), _num(r["fit_seconds"], 0),
             _bytes(r["peak_rss_bytes"]), _bytes(r["peak_vram_bytes"]),
             "—" if r["n_params"] is None else f"{r['n_params']:,}", _num(r["predict_seconds_per_case"], 2)]
            for r in leaderboard_rows(report)]
    return head, rows


def _per_class(rung: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    head = ["class", "Dice [95% CI]", "HD95 mm [95% CI]", "HD95 undefined"]
    rows = [[name, _ci(s["dice_mean"], s["dice_ci_low"], s["dice_ci_high"]),
             _ci(s["hd95_mean"], s["hd95_ci_low"], s["hd95_ci_high"], 2), str(s["hd95_n_undefined"])]
            for name, s in (rung.get("per_class") or {}).items()]
    return head, rows


def _postprocessing_text(steps: list[dict[str, Any]], classes: dict[str, str]) -> str:
    return ", ".join(f"{s['op']} on {classes.get(str(s['class']), s['class'])}" for s in steps) or "none helped"


def _md_table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def to_markdown(report: dict[str, Any]) -> str:
    """Markdown report: summary sentence, leaderboard, per-class table, post-processing."""
    ds = report["dataset"]
    parts = [
        f"# automed report: {report['task']}",
        _summary_sentence(report),
        f"Dataset `{ds['path']}` ({ds['format']}): {ds['n_cases']} cases, {ds['dims']}D, {ds['modality']}, "
        f"classes {ds['classes']}, median shape {ds['median_shape']}.",
        "## Leaderboard", _md_table(*_leaderboard(report)),
    ]
    for rung in report["rungs"]:
        if rung["status"] != "done":
            continue
        parts += [f"## {rung['name']}: per class", _md_table(*_per_class(rung))]
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

    done = [r for r in report["rungs"] if r["status"] == "done" and r.get("per_case")]
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
              "postprocessing": _postprocessing_text(r.get("postprocessing") or [], classes)}
             for r in report["rungs"] if r["status"] == "done"]
    summary = _summary_sentence(report).replace("**", "")
    return env.get_template("report.html").render(
        report=report, summary=summary, leaderboard=_leaderboard(report), rungs=rungs, plot=_dice_plot(report),
    )
