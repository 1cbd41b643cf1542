"""Opening a run's dataset: the dataset, its fingerprint or summary and the splits of a new fit,
the same reopened for a resumed one, and the cases every rung is judged on."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any

from automed.errors import DataError
from automed.recipe import Recipe

__all__ = ["about", "comparison_cases", "prepare_classification", "prepare_segmentation", "reopen"]

log = logging.getLogger("automed")


def reopen(recipe: Recipe, data: Path, folder: Path) -> tuple[Any, Any, dict[str, Any]]:
    """The dataset, its fingerprint and the splits recorded at set-up."""
    splits = json.loads((folder / "splits.json").read_text())
    summary = json.loads((folder / "fingerprint.json").read_text())
    if recipe.task == "classification":
        from automed.data.classification import open_classification

        return open_classification(data, recipe.data_format, recipe.colour == "rgb", recipe.class_order,
                                   recipe.ordinal), summary, splits
    from automed.data.dataset import open_dataset
    from automed.data.fingerprint import Fingerprint

    return open_dataset(data, recipe.data_format, recipe.colour == "rgb"), Fingerprint.from_dict(summary), splits


def comparison_cases(recipe: Recipe, splits: dict[str, Any], dataset: Any) -> list[str]:
    """The cases every rung is judged on."""
    if recipe.task == "classification":
        return list(splits["test"])
    if recipe.cv == "full":
        return sorted(c.case_id for c in dataset.cases)
    return list(splits["folds"][0]["val"])


def prepare_segmentation(recipe: Recipe, data: Path, progress: bool) -> tuple:
    """The dataset, its fingerprint (and as a dict), the splits record and the folds of a new fit."""
    from automed.data.dataset import open_dataset
    from automed.data.fingerprint import compute_fingerprint
    from automed.data.splits import make_folds, read_folds

    dataset = open_dataset(data, recipe.data_format, recipe.colour == "rgb")
    ids, groups = [c.case_id for c in dataset.cases], [c.group for c in dataset.cases]
    if recipe.folds_file is not None:  # checked before the fingerprint's minutes of reading
        # n_folds left at its default takes the file's number of folds; any other must be the file's
        default_n_folds = next(f.default for f in fields(Recipe) if f.name == "n_folds")
        folds = read_folds(recipe.folds_file, ids, groups,
                           None if recipe.n_folds == default_n_folds else recipe.n_folds)
        log.info("folds: %d, read from %s", len(folds), recipe.folds_file)
    fingerprint = compute_fingerprint(dataset, recipe.random_state, progress, recipe.target_spacing)
    log.info("dataset: %d cases, %dD, classes %s, format %s", fingerprint.n_cases, fingerprint.dims,
             fingerprint.classes, dataset.format)
    if recipe.folds_file is None:
        with about(data):
            folds = make_folds(ids, groups, recipe.n_folds, recipe.random_state)
    splits = {"kind": "cv", "n_folds": len(folds), "random_state": recipe.random_state,
              "grouped": any(groups), "folds": folds,
              "folds_file": None if recipe.folds_file is None else str(Path(recipe.folds_file).resolve())}
    return dataset, fingerprint, fingerprint.to_dict(), splits, folds


def prepare_classification(recipe: Recipe, data: Path, progress: bool) -> tuple:
    """The dataset, its summary (twice, as the segmentation tuple has it), the splits and the folds."""
    from automed.data.classification import open_classification, summarize
    from automed.data.splits import holdout_split, stratified_folds

    dataset = open_classification(data, recipe.data_format, recipe.colour == "rgb", recipe.class_order,
                                  recipe.ordinal)
    summary = summarize(dataset)
    log.info("dataset: %d images, %dD, classes %s, format %s", summary["n_cases"], summary["dims"],
             list(dataset.classes), dataset.format)
    with about(data):
        if dataset.official_split:
            by_split = {s: sorted(c.case_id for c in dataset.cases if c.split == s) for s in ("train", "val", "test")}
            dev = by_split["train"] + by_split["val"]
            labels = {c.case_id: c.label for c in dataset.cases}
            folds = stratified_folds(dev, [labels[c] for c in dev], dev, recipe.n_folds, recipe.random_state)
            splits = {"kind": "official", **by_split, "dev": sorted(dev), "folds": folds}
        else:
            splits = holdout_split([c.case_id for c in dataset.cases], [c.label for c in dataset.cases],
                                   [c.group for c in dataset.cases], recipe.test_fraction, recipe.n_folds,
                                   recipe.random_state)
    return dataset, summary, summary, splits, splits["folds"]


@contextmanager
def about(data: Path) -> Iterator[None]:
    """Errors about the dataset as a whole (too few cases for the splits) start with its path."""
    try:
        yield
    except DataError as exc:
        raise DataError(f"{data}: {exc}") from exc
