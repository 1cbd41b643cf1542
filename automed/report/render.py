"""Render a report dict to Markdown and to a self-contained HTML page."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from automed.report.audit import audit_sections
from automed.report.overlays import OVERLAYS
from automed.report.learning_curve import learning_curve_sections
from automed.report.plots import TRAINING_CURVES, pareto_png, pareto_points
from automed.report.quality import quality_sections
from automed.report.raters import rater_sections
from automed.report.site_shift import site_shift_sections
from automed.report.recommend import recommendation_of
from automed.report.sections import (
    chosen_configuration,
    realised_plan,
    reproducibility_lines,
    small_sample_warning,
)
from automed.report.tables import format_ci, format_gain, format_number, leaderboard_rows, metric_label
from automed.report.task_report import Section, task_report

__all__ = ["to_html", "to_markdown"]


def _bytes(value: Any) -> str:
    return "—" if value is None else f"{value / 2**30:.2f} GiB"


def _constraints_sentence(report: dict[str, Any]) -> str | None:
    """``"Constraints: budget 30 min, max VRAM 8.0 GiB, ... The ladder stopped early: ..."``; None for old runs."""
    limits = report.get("constraints") or {}
    shown = {"budget_s": lambda v: f"budget {v / 60:.0f} min", "max_vram_bytes": lambda v: f"max VRAM {_bytes(v)}",
             "min_gain": lambda v: f"min gain {v:g}", "full_ladder": lambda v: f"full ladder {'on' if v else 'off'}",
             "cv": lambda v: f"cv {v}"}
    parts = [show(limits[key]) for key, show in shown.items() if limits.get(key) is not None]
    text = f"Constraints: {', '.join(parts)}." if parts else ""
    if report.get("stopped_early"):
        text += f" The ladder stopped early: {report['stopped_early'].rstrip('.')}."
    return text.strip() or None


def _leaderboard(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Leaderboard cells; a cost column that is empty for every rung (old or classification runs) is left out."""
    rows = leaderboard_rows(report)
    baseline = next((r["gain_vs_baseline"] for r in rows if r["gain_vs_baseline"]), "baseline")
    head = ["rung", "metric [95% CI]", "n", f"gain vs {baseline} [95% CI]", "gain vs previous best [95% CI]",
            "fit s (search + final)", "core-h / GPU-h", "trials (pruned)", "params", "peak RSS",
            "peak / est. train VRAM", "predict s/case", "status"]
    cells = [[r["rung"], format_ci(r["comparison_mean"], r["comparison_ci_low"], r["comparison_ci_high"]),
              "—" if r["comparison_n"] is None else str(r["comparison_n"]), _gain(r, "gain_vs_baseline"), _gain(r, "gain_vs_prev", with_name=True), _fit_cell(r),
              _pair(format_number(r["core_hours"], 2), format_number(r["gpu_hours"], 2)), _trials_cell(r),
              "—" if r["n_params"] is None else f"{r['n_params']:,}", _bytes(r["peak_rss_bytes"]),
              _pair(_bytes(r["peak_vram_bytes"]), _bytes(r["est_train_vram_bytes"])),
              format_number(r["predict_seconds_per_case"], 2),
              r["status"] + (f": {r['reason']}" if r["reason"] else "")] for r in rows]
    keep = [j for j, h in enumerate(head) if h in ("rung", "metric [95% CI]", "status")
            or any(row[j] != "—" for row in cells)]
    return [head[j] for j in keep], [[row[j] for j in keep] for row in cells]


def _leaderboard_note(report: dict[str, Any]) -> str:
    rows = leaderboard_rows(report)
    cases = next((r["comparison_cases"] for r in rows if r["comparison_cases"]), None)
    where = (f"on the {cases} where a rung reports them, else on its own evaluated cases" if cases
             else "on each rung's own evaluated cases")
    gains = any(r["gain_vs_baseline_mean"] is not None or r["gain_vs_prev_mean"] is not None for r in rows)
    return f"Metric: mean with 95% bootstrap CI, {where}." + (
        " Gains: paired per-case differences with 95% bootstrap CI." if gains else "")


def _gain(row: dict[str, Any], key: str, with_name: bool = False) -> str:
    if row[f"{key}_mean"] is None:
        return "—"
    text = format_gain(row[f"{key}_mean"], row[f"{key}_ci_low"], row[f"{key}_ci_high"])
    return f"{text} vs {row[key]}" if with_name and row[key] else text


def _fit_cell(row: dict[str, Any]) -> str:
    """``"840 (600 + 240)"``: fit seconds, with search and final-fit seconds where known."""
    total = format_number(row["fit_seconds"], 0)
    if row["search_seconds"] is None and row["final_fit_seconds"] is None:
        return total
    return f"{total} ({format_number(row['search_seconds'], 0)} + {format_number(row['final_fit_seconds'], 0)})"


def _trials_cell(row: dict[str, Any]) -> str:
    if row["n_trials"] is None:
        return "—"
    return str(row["n_trials"]) + ("" if row["n_trials_pruned"] is None else f" ({row['n_trials_pruned']})")


def _pair(first: str, second: str) -> str:
    return "—" if first == second == "—" else f"{first} / {second}"


def _rung_notes(rung: dict[str, Any]) -> list[str]:
    """Own-case metric (where the comparison cases differ), estimate against measurement, shrinks."""
    notes = []
    metric, cost, estimate = rung.get("metric") or {}, rung.get("cost") or {}, rung.get("estimate") or {}
    details, reference = rung.get("details") or {}, rung.get("gain_vs_reference")
    if details.get("initialisation"):
        notes.append(f"Initialisation: {details['initialisation']}.")
    if details.get("n_models", 1) > 1:
        seeds = [m["seed"] for m in details["training"]]
        notes.append(f"Deep ensemble: the mean probabilities of {details['n_models']} models trained with seeds "
                     f"{', '.join(map(str, seeds))}; its parameter count is theirs together.")
    if details.get("members"):
        notes.append(f"Members: {', '.join(details['members'])} ({details['combination']}); its cost columns are "
                     "their sums, since it needs all of them.")
    if details.get("selection"):
        tried = ", ".join(f"{k} {v:.4f}" for k, v in details["selection"].items())
        notes.append(f"Members chosen by {details['selection_metric']} ({details['n_validation_cases']} cases; "
                     f"never the comparison or test cases): {tried}.")
    if (details.get("auto_context") or {}).get("sigmas"):
        ac = details["auto_context"]
        notes.append(f"Auto-context: a second stage on the first stage's out-of-fold probabilities (smoothed at "
                     f"{', '.join(map(str, ac['sigmas']))} voxels, read {', '.join(map(str, ac['offsets']))} voxels "
                     f"along each axis) gave out-of-fold Dice {ac['oof_dice_second_stage']:.4f} against "
                     f"{ac['oof_dice_first_stage']:.4f} before post-processing; "
                     + ("kept." if ac["kept"] else "not kept, so the first stage predicts alone."))
    if reference:
        notes.append(f"Gain over {reference['vs']}, the same network trained from scratch: "
                     f"{format_gain(reference['mean'], reference.get('ci_low'), reference.get('ci_high'))} "
                     f"(paired, {reference['n']} cases).")
    compared = (rung.get("comparison") or {}).get("metric") or {}
    if compared and metric.get("mean") is not None and compared.get("n") != metric.get("n"):
        notes.append(f"On its own {metric.get('n')} evaluated cases: {metric_label(metric.get('name'))} "
                     f"{format_ci(metric['mean'], metric.get('ci_low'), metric.get('ci_high'))}.")
    if estimate.get("seconds") is not None or estimate.get("train_vram_bytes") is not None:
        vram, peak = estimate.get("train_vram_bytes"), cost.get("peak_vram_bytes")
        note = f" ({estimate['note'].rstrip('.')})" if estimate.get("note") else ""
        notes.append(f"Estimated before fitting: {format_number(estimate.get('seconds'), 0)} s"
                     + ("" if vram is None else f", {_bytes(vram)} training VRAM") + f"{note}; measured: "
                     + f"{format_number(cost.get('fit_seconds'), 0)} s" + ("" if peak is None else f", peak VRAM {_bytes(peak)}")
                     + ".")
    if rung.get("shrunk"):
        notes.append(f"Shrunk to fit: {'; '.join(rung['shrunk'])}.")
    if details.get("stage_seconds"):
        notes.append("Where its time went: " + ", ".join(f"{stage} {format_number(s, 0)} s"
                                                         for stage, s in details["stage_seconds"].items()) + ".")
    if details.get("library_warnings"):
        notes.append("Library warnings (each logged once in automed.log): " + "; ".join(
            f"{w['category']} x{w['count']}: {w['message'][:120]}" for w in details["library_warnings"][:3]) + ".")
    if details.get("throughput"):
        notes.append(_throughput_sentence(details["throughput"]))
    return notes


def _throughput_sentence(t: dict[str, Any]) -> str:
    """Training throughput: steps and voxels per second, the data path's share, share of peak."""
    text = (f"Training throughput: {format_number(t['steps_per_second'], 2)} steps/s, "
            f"{format_number(t['voxels_per_second'] / 1e6, 2)} M voxels/s over {t['steps']} steps; drawing batches took "
            f"{format_number(100 * t['data_share'], 0)}% of step time")
    if t.get("gflops_per_second") is not None:
        text += f"; {format_number(t['gflops_per_second'], 1)} GFLOP/s"
        if t.get("fraction_of_matmul_peak") is not None:
            precision = t.get("precision", "fp32")  # reports written before bfloat16 peaks were fp32
            text += (f", {format_number(100 * t['fraction_of_matmul_peak'], 1)}% of this device's measured {precision} "
                     f"matrix-product peak ({format_number(t['peak'][f'matmul_{precision}_gflops'], 0)} GFLOP/s)")
    return text + "."


def _md_table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def to_markdown(report: dict[str, Any], folder: Path | None = None) -> str:
    """Markdown report: recommendation, constraints, leaderboard, figures, per-case scores, per-rung details,
    reproducibility.

    Figures are linked as the files :func:`automed.report.write_reports` writes beside the report
    (``pareto.png``, the task's figures, ``rungs/<name>/*.png``); with ``folder`` only those present are linked.
    """
    task = task_report(report)
    chosen = recommendation_of(report)
    summary = chosen["sentence"]
    if chosen["rung"] is not None:
        summary = summary.replace(f"Use {chosen['rung']}:", f"Use **{chosen['rung']}**:", 1)
    warning = small_sample_warning(report)
    parts = [f"# automed report: {report['task']}", summary, warning and f"**{warning}**", _constraints_sentence(report),
             task.describe_dataset(report), "## Leaderboard", _md_table(*_leaderboard(report)),
             _leaderboard_note(report)]
    if pareto_points(report):
        parts.append("![metric vs compute: score on the comparison cases against fit seconds](pareto.png)")
    parts += [f"![{figure.caption}]({figure.file})" for figure in task.figures(report) if _present(folder, figure.file)]
    for section in _run_sections(report):
        parts += [f"## {section.title}", section.text, section.table and _md_table(*section.table),
                  " ".join(f"![{caption}]({path})" for caption, path in section.images if _present(folder, path))]
    per_case = task.per_case(report)
    if per_case:
        parts += ["## Per case", per_case[0], _md_table(*per_case[1])]
    for rung in report["rungs"]:
        if rung["status"] != "done":
            continue
        table = task.rung_table(report, rung)
        parts += [f"## {task.rung_title(rung)}", table and _md_table(*table), *_rung_notes(rung)]
        for section in task.rung_sections(report, rung) + _configuration_sections(rung):
            parts += [section.title and f"### {section.title}", section.text,
                      section.table and _md_table(*section.table),
                      " ".join(f"![{caption}]({path})" for caption, path in section.images)]
        for name, caption in ((TRAINING_CURVES, "training curves"), (OVERLAYS, OVERLAY_CAPTION)):
            if _present(folder, f"rungs/{rung['name']}/{name}"):
                parts.append(f"![{rung['name']}: {caption}](rungs/{rung['name']}/{name})")
    parts += ["## Reproducibility", *reproducibility_lines(report)]
    return "\n\n".join(p for p in parts if p) + "\n"


OVERLAY_CAPTION = "prediction (filled) against ground truth (outlined) on the best, median and worst comparison cases"


def _present(folder: Path | None, name: str) -> bool:
    return folder is not None and (folder / name).is_file()


def _configuration_sections(rung: dict[str, Any]) -> list[Section]:
    """The chosen hyperparameters and the realised training plan, where the rung records them."""
    tables = [("Chosen configuration", chosen_configuration(rung)), ("Realised plan", realised_plan(rung))]
    return [Section(title, table=table) for title, table in tables if table]


def to_html(report: dict[str, Any], folder: Path | None = None) -> str:
    """Self-contained HTML page (plots embedded), rendered from the report dict and, for pictures a rung
    wrote (training curves, overlays, Grad-CAM), the PNG files in the run ``folder``."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("automed.report", "templates"),
                             autoescape=jinja2.select_autoescape(["html"]))
    task = task_report(report)
    rungs = [{"name": r["name"], "title": task.rung_title(r), "table": task.rung_table(report, r),
              "notes": _rung_notes(r), "sections": [_embedded(s, folder) for s in task.rung_sections(report, r)
                                                    + _configuration_sections(r)],
              "curves": _base64(_file(folder, f"rungs/{r['name']}/{TRAINING_CURVES}")),
              "overlays": _base64(_file(folder, f"rungs/{r['name']}/{OVERLAYS}"))}
             for r in report["rungs"] if r["status"] == "done"]
    per_case = task.per_case(report)
    return env.get_template("report.html").render(
        report=report, summary=recommendation_of(report)["sentence"], constraints=_constraints_sentence(report),
        warning=small_sample_warning(report), per_case=per_case and per_case[1], per_case_note=per_case and per_case[0],
        reproducibility=reproducibility_lines(report), overlay_caption=OVERLAY_CAPTION,
        dataset=task.describe_dataset(report).replace("`", ""), leaderboard=_leaderboard(report),
        leaderboard_note=_leaderboard_note(report), rungs=rungs, pareto=_base64(pareto_png(report)),
        figures=[{"caption": f.caption, "png": _base64(f.png)} for f in task.figures(report) if f.png is not None],
        run_sections=[_embedded(section, folder) for section in _run_sections(report)],
    )


def _run_sections(report: dict[str, Any]) -> list[Section]:
    """The run-level sections after the leaderboard: the learning curve, another site, the raters, the label audit,
    the quality of predictions."""
    return (learning_curve_sections(report) + site_shift_sections(report) + rater_sections(report)
            + audit_sections(report) + quality_sections(report))


def _embedded(section: Section, folder: Path | None) -> dict[str, Any]:
    """A section for the HTML template: its pictures read from the run ``folder`` as base64 (missing ones left out)."""
    images = [{"caption": caption, "png": _base64(_file(folder, path))} for caption, path in section.images
              if _present(folder, path)]
    return {"title": section.title, "text": section.text, "table": section.table, "images": images}


def _file(folder: Path | None, name: str) -> bytes | None:
    """The bytes of ``folder/name``, or None when there is no such file."""
    return (folder / name).read_bytes() if _present(folder, name) else None


def _base64(png: bytes | None) -> str | None:
    return None if png is None else base64.b64encode(png).decode()
