"""The classification report's own parts: per-class recall and precision, the decision threshold, the test-set
scores (with quadratic-weighted kappa for ordered grades), the confusion matrix, per-site AUC, top features and
Grad-CAM overlays."""

from __future__ import annotations

from typing import Any

from automed.report.sections import Table, evaluated_cases
from automed.report.tables import format_ci, format_number
from automed.report.task_report import Section, TaskReport

__all__ = ["ClassificationReport"]

_METRIC_NAMES = {"qwk": "quadratic-weighted kappa"}


class ClassificationReport(TaskReport):
    """Image-level labels judged on held-out test cases."""

    def describe_dataset(self, report: dict[str, Any]) -> str:
        ds = report["dataset"]
        order = "ordered grades, lowest first" if _ordinal(report) else "unordered"
        channels = {1: "grey", 3: "colour (R, G, B)"}.get(ds.get("n_channels", 1), f"{ds.get('n_channels')} channels")
        if ds.get("colour_as_luminance"):
            channels = "colour read as luminance"
        return (f"Dataset `{ds['path']}` ({ds['format']}): {ds['n_cases']} images, {ds['dims']}D, {channels}, "
                f"classes {list(ds['classes'].values())} ({order}), counts {ds['class_counts']}, "
                f"{'official' if ds['official_split'] else 'held-out'} test split"
                f"{', ROI masks given' if ds.get('has_masks') else ''}.")

    def rung_title(self, rung: dict[str, Any]) -> str:
        return f"{rung['name']}: per class, {evaluated_cases(rung)}"

    def rung_table(self, report: dict[str, Any], rung: dict[str, Any]) -> Table:
        return (["class", "recall", "precision", "n (test)"],
                [[name, format_number(v["recall"]), format_number(v["precision"]), str(v["n"])]
                 for name, v in (rung.get("per_class") or {}).items()])

    def rung_sections(self, report: dict[str, Any], rung: dict[str, Any]) -> list[Section]:
        classes = list(report["dataset"]["classes"].values())
        sections = []
        if rung.get("threshold") is not None:
            sections.append(Section(text=f"Decision threshold on p({classes[1]}), chosen on development predictions "
                                         f"(never the test cases): {rung['threshold']:.3f}."))
        test = rung["test"]
        keys = ("auc", "accuracy", "balanced_accuracy") + (("qwk",) if _ordinal(report) and "qwk" in test else ())
        sections.append(Section("Test set", table=(
            ["metric", "value [95% CI]"],
            [[_METRIC_NAMES.get(k, k), format_ci(test[k]["mean"], test[k]["ci_low"], test[k]["ci_high"])]
             for k in keys])))
        sections.append(Section("Confusion matrix (rows: truth, columns: prediction)", table=(
            ["truth \\ predicted"] + classes,
            [[c] + [str(v) for v in row] for c, row in zip(classes, test["confusion_matrix"])])))
        if rung.get("per_site"):
            sections.append(Section("Per site", table=(
                ["site", "n", "AUC [95% CI]", "accuracy"],
                [[site, str(v["n"]), format_ci(v["auc"]["mean"], v["auc"]["ci_low"], v["auc"]["ci_high"]),
                  format_number(v["accuracy"]["mean"])] for site, v in rung["per_site"].items()])))
        if rung.get("top_features"):
            sections.append(Section("Top features", table=(
                ["feature", "importance"],
                [[f["feature"], format_number(f["importance"])] for f in rung["top_features"][:10]])))
        if rung.get("gradcam"):
            sections.append(Section("Grad-CAM: where the network looked (test cases)", images=tuple(
                (f"{g['case_id']}: true {g['label']}, predicted {g['predicted']}", f"rungs/{rung['name']}/{g['file']}")
                for g in rung["gradcam"])))
        return sections

    def scored_cases(self, report: dict[str, Any], metric: dict[str, Any]) -> str:
        return f"{metric.get('n')} held-out test cases"


def _ordinal(report: dict[str, Any]) -> bool:
    return bool((report.get("recipe") or {}).get("ordinal"))
