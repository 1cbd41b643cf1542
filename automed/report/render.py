"""Render a report dict to Markdown and to a self-contained HTML page."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from automed.report.overlays import OVERLAYS
from automed.report.plots import TRAINING_CURVES, dice_boxplot_png, learning_curve_png, pareto_png, pareto_points
from automed.report.sections import (
    chosen_configuration,
    per_case_table,
    realised_plan,
    reproducibility_lines,
    small_sample_warning,
)
from automed.report.recommend import recommendation_of
from automed.report.tables import format_ci, format_gain, leaderboard_rows, metric_label

__all__ = ["to_html", "to_markdown"]


def _num(value: Any, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _bytes(value: Any) -> str:
    return "—" if value is None else f"{value / 2**30:.2f} GiB"


def _ci(mean: Any, low: Any, high: Any, digits: int = 3) -> str:
    return format_ci(mean, low, high, digits)


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


def _dataset_sentence(report: dict[str, Any]) -> str:
    ds = report["dataset"]
    classes = list(ds["classes"].values())
    if report["task"] == "classification":
        order = "ordered grades, lowest first" if _ordinal(report) else "unordered"
        channels = {1: "grey", 3: "colour (R, G, B)"}.get(ds.get("n_channels", 1), f"{ds.get('n_channels')} channels")
        if ds.get("colour_as_luminance"):
            channels = "colour read as luminance"
        return (f"Dataset `{ds['path']}` ({ds['format']}): {ds['n_cases']} images, {ds['dims']}D, {channels}, "
                f"classes {classes} ({order}), counts {ds['class_counts']}, "
                f"{'official' if ds['official_split'] else 'held-out'} test split"
                f"{', ROI masks given' if ds.get('has_masks') else ''}.")
    roi = (f" {ds['n_cases_with_roi']} case(s) have a region of interest: nothing is learnt, segmented or scored "
           "outside it." if ds.get("n_cases_with_roi") else "")
    why = ds.get("spacing_note") or "the recipe's target_spacing"
    grid = (f" The working grid has spacing {ds['target_spacing']} ({why}): the shapes above, fitting and the scores are on that grid; cases stored on another "
            "are resampled onto it, and their predictions back onto their own grid." if ds.get("target_spacing") else "")
    return (f"Dataset `{ds['path']}` ({ds['format']}): {ds['n_cases']} cases, {ds['dims']}D, {ds['modality']}, "
            f"classes {classes}, median shape {ds['median_shape']}, median spacing {ds['median_spacing']}.{roi}{grid}")


def _leaderboard(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Leaderboard cells; a cost column that is empty for every rung (old or classification runs) is left out."""
    rows = leaderboard_rows(report)
    baseline = next((r["gain_vs_baseline"] for r in rows if r["gain_vs_baseline"]), "baseline")
    head = ["rung", "metric [95% CI]", "n", f"gain vs {baseline} [95% CI]", "gain vs previous best [95% CI]",
            "fit s (search + final)", "core-h / GPU-h", "trials (pruned)", "params", "peak RSS",
            "peak / est. train VRAM", "predict s/case", "status"]
    cells = [[r["rung"], _ci(r["comparison_mean"], r["comparison_ci_low"], r["comparison_ci_high"]),
              "—" if r["comparison_n"] is None else str(r["comparison_n"]), _gain(r, "gain_vs_baseline"), _gain(r, "gain_vs_prev", with_name=True), _fit_cell(r),
              _pair(_num(r["core_hours"], 2), _num(r["gpu_hours"], 2)), _trials_cell(r),
              "—" if r["n_params"] is None else f"{r['n_params']:,}", _bytes(r["peak_rss_bytes"]),
              _pair(_bytes(r["peak_vram_bytes"]), _bytes(r["est_train_vram_bytes"])),
              _num(r["predict_seconds_per_case"], 2),
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
    total = _num(row["fit_seconds"], 0)
    if row["search_seconds"] is None and row["final_fit_seconds"] is None:
        return total
    return f"{total} ({_num(row['search_seconds'], 0)} + {_num(row['final_fit_seconds'], 0)})"


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
                     f"{_ci(metric['mean'], metric.get('ci_low'), metric.get('ci_high'))}.")
    if estimate.get("seconds") is not None or estimate.get("train_vram_bytes") is not None:
        vram, peak = estimate.get("train_vram_bytes"), cost.get("peak_vram_bytes")
        note = f" ({estimate['note'].rstrip('.')})" if estimate.get("note") else ""
        notes.append(f"Estimated before fitting: {_num(estimate.get('seconds'), 0)} s"
                     + ("" if vram is None else f", {_bytes(vram)} training VRAM") + f"{note}; measured: "
                     + f"{_num(cost.get('fit_seconds'), 0)} s" + ("" if peak is None else f", peak VRAM {_bytes(peak)}")
                     + ".")
    if rung.get("shrunk"):
        notes.append(f"Shrunk to fit: {'; '.join(rung['shrunk'])}.")
    if details.get("throughput"):
        notes.append(_throughput_sentence(details["throughput"]))
    return notes


def _throughput_sentence(t: dict[str, Any]) -> str:
    """Training throughput: steps and voxels per second, the data path's share, share of peak."""
    text = (f"Training throughput: {_num(t['steps_per_second'], 2)} steps/s, "
            f"{_num(t['voxels_per_second'] / 1e6, 2)} M voxels/s over {t['steps']} steps; drawing batches took "
            f"{_num(100 * t['data_share'], 0)}% of step time")
    if t.get("gflops_per_second") is not None:
        text += f"; {_num(t['gflops_per_second'], 1)} GFLOP/s"
        if t.get("fraction_of_matmul_peak") is not None:
            precision = t.get("precision", "fp32")  # reports written before bfloat16 peaks were fp32
            text += (f", {_num(100 * t['fraction_of_matmul_peak'], 1)}% of this device's measured {precision} "
                     f"matrix-product peak ({_num(t['peak'][f'matmul_{precision}_gflops'], 0)} GFLOP/s)")
    return text + "."


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


def _classification_tables(rung: dict[str, Any], classes: list[str],
                           ordinal: bool = False) -> list[tuple[str, tuple[list[str], list[list[str]]]]]:
    """Test scores (with quadratic-weighted kappa for ordered classes), confusion matrix, per-site
    scores and top features of a classification rung."""
    test = rung["test"]
    keys = ("auc", "accuracy", "balanced_accuracy") + (("qwk",) if ordinal and "qwk" in test else ())
    names = {"qwk": "quadratic-weighted kappa"}
    tables = [("Test set", (["metric", "value [95% CI]"],
                            [[names.get(k, k), _ci(test[k]["mean"], test[k]["ci_low"], test[k]["ci_high"])]
                             for k in keys]))]
    tables.append(("Confusion matrix (rows: truth, columns: prediction)",
                   (["truth \\ predicted"] + classes,
                    [[c] + [str(v) for v in row] for c, row in zip(classes, test["confusion_matrix"])])))
    if rung.get("per_site"):
        tables.append(("Per site", (["site", "n", "AUC [95% CI]", "accuracy"],
                                    [[site, str(v["n"]), _ci(v["auc"]["mean"], v["auc"]["ci_low"], v["auc"]["ci_high"]),
                                      _num(v["accuracy"]["mean"])] for site, v in rung["per_site"].items()])))
    if rung.get("top_features"):
        tables.append(("Top features", (["feature", "importance"],
                                        [[f["feature"], _num(f["importance"])] for f in rung["top_features"][:10]])))
    return tables


def _ordinal(report: dict[str, Any]) -> bool:
    return bool((report.get("recipe") or {}).get("ordinal"))


def _segmentation_tables(rung: dict[str, Any]) -> list[tuple[str, tuple[list[str], list[list[str]]]]]:
    """Per-site Dice of a segmentation rung, when the cases name their site."""
    if not rung.get("per_site"):
        return []
    return [("Per site", (["site", "n", "Dice [95% CI]"],
                          [[site, str(m["n"]), _ci(m["mean"], m["ci_low"], m["ci_high"])]
                           for site, m in rung["per_site"].items()]))]


def _postprocessing_text(steps: list[dict[str, Any]], classes: dict[str, str]) -> str:
    return ", ".join(f"{s['op']} on {classes.get(str(s['class']), s['class'])}" for s in steps) or "none helped"


def _md_table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def to_markdown(report: dict[str, Any], folder: Path | None = None) -> str:
    """Markdown report: recommendation, constraints, leaderboard, figures, per-case scores, per-rung details,
    reproducibility.

    Figures are linked as the files :func:`automed.report.write_reports` writes beside the report
    (``pareto.png``, ``dice_boxplot.png``, ``rungs/<name>/*.png``); with ``folder`` only those present are linked.
    """
    ds = report["dataset"]
    chosen = recommendation_of(report)
    summary = chosen["sentence"]
    if chosen["rung"] is not None:
        summary = summary.replace(f"Use {chosen['rung']}:", f"Use **{chosen['rung']}**:", 1)
    warning = small_sample_warning(report)
    parts = [f"# automed report: {report['task']}", summary, warning and f"**{warning}**", _constraints_sentence(report),
             _dataset_sentence(report), "## Leaderboard", _md_table(*_leaderboard(report)), _leaderboard_note(report)]
    if pareto_points(report):
        parts.append("![metric vs compute: score on the comparison cases against fit seconds](pareto.png)")
    if _present(folder, "dice_boxplot.png"):
        parts.append("![Dice per case on the comparison cases, per class and rung](dice_boxplot.png)")
    if report.get("learning_curve"):
        parts += ["## Learning curve", _md_table(*_learning_curve(report)),
                  "![test metric against the fraction of labelled cases](learning_curve.png)"]
    per_case = per_case_table(report)
    if per_case:
        parts += ["## Per case", _per_case_note(report), _md_table(*per_case)]
    for rung in report["rungs"]:
        if rung["status"] != "done":
            continue
        parts += [f"## {rung['name']}: per class, {_own_cases(rung)}", _md_table(*_per_class(rung)), *_rung_notes(rung)]
        if report["task"] == "classification":
            if rung.get("threshold") is not None:
                parts.append(f"Decision threshold on p({list(ds['classes'].values())[1]}), chosen on development "
                             f"predictions (never the test cases): {rung['threshold']:.3f}.")
            for title, table in _classification_tables(rung, list(ds["classes"].values()), _ordinal(report)):
                parts += [f"### {title}", _md_table(*table)]
            if rung.get("gradcam"):
                parts += ["### Grad-CAM: where the network looked (test cases)",
                          " ".join(f"![{g['case_id']}: true {g['label']}, predicted {g['predicted']}]"
                                   f"(rungs/{rung['name']}/{g['file']})" for g in rung["gradcam"])]
        else:
            chosen_steps = _postprocessing_text(rung.get("postprocessing") or [], ds["classes"])
            parts.append(f"Post-processing chosen by cross-validation: {chosen_steps}.")
            for title, table in _segmentation_tables(rung):
                parts += [f"### {title}", _md_table(*table)]
        for title, table in _configuration_tables(rung):
            parts += [f"### {title}", _md_table(*table)]
        for name, caption in ((TRAINING_CURVES, "training curves"), (OVERLAYS, OVERLAY_CAPTION)):
            if _present(folder, f"rungs/{rung['name']}/{name}"):
                parts.append(f"![{rung['name']}: {caption}](rungs/{rung['name']}/{name})")
    parts += ["## Reproducibility", *reproducibility_lines(report)]
    return "\n\n".join(p for p in parts if p) + "\n"


OVERLAY_CAPTION = "prediction (filled) against ground truth (outlined) on the best, median and worst comparison cases"


def _present(folder: Path | None, name: str) -> bool:
    return folder is not None and (folder / name).is_file()


def _own_cases(rung: dict[str, Any]) -> str:
    """``"on its 30 evaluated cases"``: which cases the per-class table is computed on."""
    n = (rung.get("metric") or {}).get("n")
    return f"on its {n} evaluated cases" if n is not None else "on its evaluated cases"


def _per_case_note(report: dict[str, Any]) -> str:
    cases = next(((r.get("comparison") or {}).get("cases") for r in report["rungs"]
                  if (r.get("comparison") or {}).get("cases")), "comparison cases")
    return f"Dice / HD95 (mm) per case and scored class, on the {cases}; trace the box plot's outliers here."


def _configuration_tables(rung: dict[str, Any]) -> list[tuple[str, tuple[list[str], list[list[str]]]]]:
    """The chosen hyperparameters and the realised training plan, where the rung records them."""
    tables = [("Chosen configuration", chosen_configuration(rung)), ("Realised plan", realised_plan(rung))]
    return [(title, table) for title, table in tables if table]


def to_html(report: dict[str, Any], folder: Path | None = None) -> str:
    """Self-contained HTML page (plots embedded), rendered from the report dict and, for Grad-CAM
    overlays, the PNG files in the run ``folder``."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("automed.report", "templates"),
                             autoescape=jinja2.select_autoescape(["html"]))
    classes = report["dataset"]["classes"]
    rungs = [{"name": r["name"], "cases": _own_cases(r), "table": _per_class(r), "notes": _rung_notes(r),
              "configuration": _configuration_tables(r),
              "curves": _base64(_file(folder, f"rungs/{r['name']}/{TRAINING_CURVES}")),
              "overlays": _base64(_file(folder, f"rungs/{r['name']}/{OVERLAYS}")),
              "postprocessing": _postprocessing_text(r.get("postprocessing") or [], classes),
              "extra": (_classification_tables(r, list(classes.values()), _ordinal(report))
                        if report["task"] == "classification"
                        else _segmentation_tables(r)),
              "threshold": r.get("threshold"), "gradcam": _gradcam_images(r, folder)}
             for r in report["rungs"] if r["status"] == "done"]
    return env.get_template("report.html").render(
        report=report, summary=recommendation_of(report)["sentence"], constraints=_constraints_sentence(report),
        warning=small_sample_warning(report), per_case=per_case_table(report), per_case_note=_per_case_note(report),
        reproducibility=reproducibility_lines(report), overlay_caption=OVERLAY_CAPTION,
        dataset=_dataset_sentence(report).replace("`", ""), leaderboard=_leaderboard(report),
        leaderboard_note=_leaderboard_note(report), rungs=rungs,
        pareto=_base64(pareto_png(report)), plot=_base64(dice_boxplot_png(report)),
        learning_curve=_learning_curve(report) if report.get("learning_curve") else None,
        learning_curve_png=_base64(learning_curve_png(report)),
    )


def _learning_curve(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Rows: rung; columns: fraction of the labelled development cases (test metric [95% CI])."""
    curve = report["learning_curve"]
    head = ["rung"] + [f"{f:g} of labels" for f in curve["fractions"]]
    rows = []
    for name, points in curve["rungs"].items():
        cells = []
        for point in points:
            metric = point.get("metric") or {}
            cells.append("skipped" if point.get("skipped") else
                         f"{_ci(metric.get('mean'), metric.get('ci_low'), metric.get('ci_high'))} (n={point['n_dev']})")
        rows.append([name] + cells)
    return head, rows


def _gradcam_images(rung: dict[str, Any], folder: Path | None) -> list[dict[str, str]]:
    """Grad-CAM overlays of a rung as ``{"caption", "png"}`` (base64), from the files in ``folder``."""
    if folder is None:
        return []
    images = []
    for entry in rung.get("gradcam") or []:
        path = folder / "rungs" / rung["name"] / entry["file"]
        if path.is_file():
            images.append({"caption": f"{entry['case_id']}: true {entry['label']}, predicted {entry['predicted']}",
                           "png": _base64(path.read_bytes())})
    return images


def _file(folder: Path | None, name: str) -> bytes | None:
    """The bytes of ``folder/name``, or None when there is no such file."""
    return (folder / name).read_bytes() if _present(folder, name) else None


def _base64(png: bytes | None) -> str | None:
    return None if png is None else base64.b64encode(png).decode()
