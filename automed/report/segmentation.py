"""The segmentation report's own parts: per-class Dice and HD95, post-processing, per-site Dice, the per-case
table, the Dice box plot, overlays, and paired gains recomputed from the per-case Dice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from automed.report.overlays import write_overlays
from automed.report.plots import dice_boxplot_png
from automed.report.sections import Table, comparison_ids, evaluated_cases
from automed.report.tables import comparison_metric, format_ci, format_number
from automed.report.task_report import Figure, Section, TaskReport
from automed.statistics import case_scores, paired_gain

__all__ = ["SegmentationReport"]


class SegmentationReport(TaskReport):
    """Label maps judged by Dice on cross-validation cases."""

    def describe_dataset(self, report: dict[str, Any]) -> str:
        ds = report["dataset"]
        roi = (f" {ds['n_cases_with_roi']} case(s) have a region of interest: nothing is learnt, segmented or scored "
               "outside it." if ds.get("n_cases_with_roi") else "")
        why = ds.get("spacing_note") or "the recipe's target_spacing"
        grid = (f" The working grid has spacing {ds['target_spacing']} ({why}): the shapes above, fitting and the "
                "scores are on that grid; cases stored on another are resampled onto it, and their predictions back "
                "onto their own grid." if ds.get("target_spacing") else "")
        return (f"Dataset `{ds['path']}` ({ds['format']}): {ds['n_cases']} cases, {ds['dims']}D, {ds['modality']}, "
                f"classes {list(ds['classes'].values())}, median shape {ds['median_shape']}, median spacing "
                f"{ds['median_spacing']}.{roi}{grid}")

    def rung_title(self, rung: dict[str, Any]) -> str:
        return f"{rung['name']}: per class, {evaluated_cases(rung)}"

    def rung_table(self, report: dict[str, Any], rung: dict[str, Any]) -> Table:
        head = ["class", "Dice [95% CI]", "HD95 mm [95% CI]", "HD95 undefined"]
        rows = [[name, format_ci(s["dice_mean"], s["dice_ci_low"], s["dice_ci_high"]),
                 format_ci(s["hd95_mean"], s["hd95_ci_low"], s["hd95_ci_high"], 2), str(s["hd95_n_undefined"])]
                for name, s in (rung.get("per_class") or {}).items()]
        return head, rows

    def rung_sections(self, report: dict[str, Any], rung: dict[str, Any]) -> list[Section]:
        classes = report["dataset"]["classes"]
        steps = ", ".join(f"{s['op']} on {classes.get(str(s['class']), s['class'])}"
                          for s in rung.get("postprocessing") or []) or "none helped"
        sections = [Section(text=f"Post-processing chosen by cross-validation: {steps}.")]
        if rung.get("per_site"):
            sections.append(Section("Per site", table=(
                ["site", "n", "Dice [95% CI]"],
                [[site, str(m["n"]), format_ci(m["mean"], m["ci_low"], m["ci_high"])]
                 for site, m in rung["per_site"].items()])))
        return sections

    def per_case(self, report: dict[str, Any]) -> tuple[str, Table] | None:
        """Rows: the comparison cases; columns: each finished rung's Dice / HD95 (mm) per scored class."""
        rungs = [r for r in report["rungs"] if _has_scores(r)]
        if not rungs:
            return None
        classes = report["dataset"]["classes"]
        scored = comparison_metric(rungs[0]).get("classes") or list(classes.values())
        keys = [(key, name) for key, name in classes.items() if name in scored]
        ids = sorted(set().union(*(comparison_ids(r) for r in rungs)))
        by_rung = {r["name"]: {c["case_id"]: c for c in r["per_case"]} for r in rungs}
        head = ["case"] + [f"{r['name']} {name} Dice / HD95" for r in rungs for _, name in keys]
        rows = []
        for case_id in ids:
            cells = [case_id]
            for rung in rungs:
                case = by_rung[rung["name"]].get(case_id)
                for key, _ in keys:
                    score = None if case is None else case["scores"].get(key)
                    cells.append("—" if score is None else f"{score['dice']:.3f} / " + (
                        "—" if score.get("hd95") is None else format_number(score["hd95"], 1)))
            rows.append(cells)
        cases = next(((r.get("comparison") or {}).get("cases") for r in report["rungs"]
                      if (r.get("comparison") or {}).get("cases")), "comparison cases")
        note = f"Dice / HD95 (mm) per case and scored class, on the {cases}; trace the box plot's outliers here."
        return note, (head, rows)

    def figures(self, report: dict[str, Any]) -> list[Figure]:
        return [Figure("dice_boxplot.png", "Dice per case on the comparison cases, per class and rung",
                       dice_boxplot_png(report))]

    def write_rung_figures(self, report: dict[str, Any], folder: Path) -> None:
        write_overlays(report, folder)

    def paired_gain(self, report: dict[str, Any], base: dict[str, Any],
                    new: dict[str, Any]) -> dict[str, Any] | None:
        """Recomputed from the two rungs' per-case Dice on their shared cases."""
        classes = (comparison_metric(new) or {}).get("classes")
        if not classes or not (_has_scores(base) and _has_scores(new)):
            return None
        scored = [int(key) for key, name in report["dataset"]["classes"].items() if name in classes]
        return paired_gain(case_scores(base["per_case"], scored), case_scores(new["per_case"], scored),
                           report.get("seed") or 0)

    def scored_cases(self, report: dict[str, Any], metric: dict[str, Any]) -> str:
        return f"{metric.get('n')} cases ({report['n_folds']}-fold cross-validation)"


def _has_scores(rung: dict[str, Any]) -> bool:
    """Whether a finished rung has per-case Dice scores."""
    per_case = rung.get("per_case") or []
    return rung["status"] == "done" and bool(per_case) and all("scores" in case for case in per_case)
