"""Classification: one label per image, judged on held-out test cases that tuning never sees."""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from automed.tasks.base import GainOver, Inspection, Opened, Prepared, Task, about

if TYPE_CHECKING:
    from automed.recipe import Recipe
    from automed.results import RungResult
    from automed.rungs.base import FitContext, RungOutcome

__all__ = ["Classification", "ClassificationModel"]

log = logging.getLogger("automed")

_DEEP_CLASSIFIER = "automed.rungs.classification.deep:DeepClassifierRung"
_TRANSFER = "automed.rungs.classification.transfer:TransferRung"


@runtime_checkable
class ClassificationModel(Protocol):
    """A fitted classification rung as :func:`~automed.ladder.predict.predict_classification` uses it."""

    def predict_proba(self, dataset: Any, cases: list[Any], n_jobs: int = 1, progress: bool = False) -> Any:
        """Class probabilities of ``cases`` of ``dataset``, shape ``(n_cases, n_classes)`` in the dataset's order."""


class Classification(Task):
    """Image-level labels (MedMNIST, class folders, CSV), judged by AUC or another recipe metric on a test split."""

    name = "classification"
    data_formats = ("auto", "medmnist", "class_folders", "csv")
    metrics = ("auc", "balanced_accuracy", "accuracy", "qwk")
    default_rungs = ("classical", "cnn", "ssl", "vgg16", "inception_v3", "ensemble")
    rungs = {
        "classical": "automed.rungs.classification.classical:ClassicalClassifierRung",
        "cnn": (_DEEP_CLASSIFIER, {"architecture": "automed.nets.resnet:ResNet"}),
        "ssl": ("automed.rungs.classification.ssl:SSLRung", {"architecture": "automed.nets.resnet:ResNet"}),
        "vgg16": (_TRANSFER, {"architecture": "automed.nets.vgg16:VGG16"}),
        "inception_v3": (_TRANSFER, {"architecture": "automed.nets.inception_v3:InceptionV3"}),
        "ensemble": "automed.rungs.classification.ensemble:ClassificationEnsembleRung",
    }
    data_suffixes = (".npz", ".csv")
    recipe_options = frozenset({"label_fractions", "ordinal", "class_order", "site_shift"})
    predictor = "automed.ladder.predict:predict_classification"
    auditor = "automed.audit.classification:audit_classification"
    fitted_model = ClassificationModel
    report_sections = "automed.report.classification:ClassificationReport"

    def prepare(self, recipe: Recipe, data: Path, progress: bool) -> Prepared:
        from automed.data.classification import summarize
        from automed.data.splits import holdout_split, stratified_folds

        dataset = self._open(recipe, data)
        summary = summarize(dataset)
        log.info("dataset: %d images, %dD, classes %s, format %s", summary["n_cases"], summary["dims"],
                 list(dataset.classes), dataset.format)
        with about(data):
            if dataset.official_split:
                by_split = {s: sorted(c.case_id for c in dataset.cases if c.split == s)
                            for s in ("train", "val", "test")}
                dev = by_split["train"] + by_split["val"]
                labels = {c.case_id: c.label for c in dataset.cases}
                folds = stratified_folds(dev, [labels[c] for c in dev], dev, recipe.n_folds, recipe.random_state)
                splits = {"kind": "official", **by_split, "dev": sorted(dev), "folds": folds}
            else:
                splits = holdout_split([c.case_id for c in dataset.cases], [c.label for c in dataset.cases],
                                       [c.group for c in dataset.cases], recipe.test_fraction, recipe.n_folds,
                                       recipe.random_state)
        return Prepared(dataset, summary, splits, summary)

    def finish(self, folder: Path, recipe: Recipe, opened: Opened, done: tuple[RungResult, ...]) -> None:
        from automed.quality.classification import write_classification_quality

        write_classification_quality(folder, recipe, opened, done)

    def inspect(self, data: Path, data_format: str) -> Inspection:
        from automed.data.classification import open_classification, scan_classification, summarize

        dataset = open_classification(data, data_format)
        problems = scan_classification(dataset)
        if problems:
            return Inspection([], None, problems, [])
        summary = summarize(dataset)
        colour = " (colour: R, G, B)" if summary["n_channels"] == 3 else ""
        return Inspection([f"{data}: {summary['n_cases']} images, {summary['dims']}D, {summary['n_channels']} "
                           f"channel(s){colour}, classes {list(summary['classes'].values())}, counts "
                           f"{summary['class_counts']}, {'official' if summary['official_split'] else 'no official'} "
                           "test split"], summary, [], [])

    def reopen(self, recipe: Recipe, data: Path, fingerprint_record: dict[str, Any],
               splits: dict[str, Any]) -> Opened:
        return Opened(self._open(recipe, data), fingerprint_record, splits)

    def comparison_cases(self, recipe: Recipe, opened: Opened) -> list[str]:
        return list(opened.splits["test"])

    def summarize(self, outcome: RungOutcome, context: FitContext, recipe: Recipe) -> dict[str, Any]:
        if outcome.summary is None:
            raise TypeError(f"a classification rung's outcome carries its summary; {outcome!r} has none")
        return outcome.summary

    def comparison(self, result: RungResult, comparison_cases: list[str], recipe: Recipe,
                   fingerprint: Any) -> tuple[dict[str, Any], GainOver]:
        from dataclasses import replace

        shared = set(comparison_cases)
        kept = [c for c in result.per_case if c["case_id"] in shared]
        if len(kept) < len(result.per_case):  # judged on some of its test cases (one site's): scored again on them
            result = replace(result, per_case=kept, metric=_metric_on(kept, result, recipe))
        judged = {"metric": result.metric, "cases": "held-out test cases", "n": result.metric["n"],
                  "case_ids": [c["case_id"] for c in result.per_case]}
        return judged, partial(_gain, result=result, recipe=recipe)

    def site_splits(self, opened: Opened, recipe: Recipe) -> dict[str, dict[str, Any]]:
        from automed.data.splits import leave_site_out_of_development

        cases = opened.dataset.cases
        return leave_site_out_of_development(opened.splits, {c.case_id: c.site for c in cases if c.site},
                                             {c.case_id: c.label for c in cases}, recipe.n_folds, recipe.random_state)

    def label_subset(self, opened: Opened, fraction: float, recipe: Recipe) -> dict[str, Any]:
        from automed.data.splits import label_subset

        labels = {c.case_id: c.label for c in opened.dataset.cases}
        return label_subset(opened.splits, labels, fraction, recipe.n_folds, recipe.random_state)

    @staticmethod
    def _open(recipe: Recipe, data: Path) -> Any:
        from automed.data.classification import open_classification

        return open_classification(data, recipe.data_format, recipe.colour == "rgb", recipe.class_order,
                                   recipe.ordinal)


def _gain(base: RungResult, result: RungResult, recipe: Recipe) -> dict[str, Any] | None:
    """Paired bootstrap difference of the recipe's metric on the test cases both rungs scored."""
    import numpy as np

    from automed.metrics import paired_classification_gain

    theirs = {c["case_id"]: c for c in base.per_case}
    mine = [c for c in result.per_case if c["case_id"] in theirs]
    if not mine:
        return None
    classes = list(result.per_class)  # class names in the dataset's order
    y = np.array([classes.index(c["label"]) for c in mine])
    gain = paired_classification_gain(y, np.array([theirs[c["case_id"]]["proba"] for c in mine]),
                                      np.array([c["proba"] for c in mine]), base.summary.get("threshold"),
                                      result.summary.get("threshold"), recipe.metric, recipe.random_state)
    return {"vs": base.name, **gain}


def _metric_on(records: list[dict[str, Any]], result: RungResult, recipe: Recipe) -> dict[str, Any]:
    """The recipe's metric (with its bootstrap CI) of ``result``'s probabilities of the cases in ``records``."""
    import numpy as np

    from automed.metrics import classification_summary

    classes = list(result.per_class)  # class names in the dataset's order
    y = np.array([classes.index(c["label"]) for c in records])
    summary = classification_summary(y, np.array([c["proba"] for c in records]), classes,
                                     result.summary.get("threshold"), recipe.random_state)
    return {"name": recipe.metric, **summary[recipe.metric], "n": summary["n"]}
