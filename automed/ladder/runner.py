"""The one place with side effects: build a run folder from a recipe and a dataset.

A fit writes into a hidden sibling folder and renames it into place only when
everything succeeded, so a run folder is either complete or absent.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from automed.errors import RunFolderError
from automed.recipe import Recipe
from automed.rungs.base import FitContext

__all__ = ["fit_run"]

log = logging.getLogger("automed")


def fit_run(recipe: Recipe, data: str | Path, out: str | Path, overwrite: bool = False, progress: bool = True) -> Path:
    """Fit every rung of ``recipe`` on the dataset at ``data`` and write the run folder ``out``.

    Returns
    -------
    Path
        The finished run folder.

    Raises
    ------
    RunFolderError
        If ``out`` exists and ``overwrite`` is false.
    DataError, RecipeError
        Bad data or recipe; nothing is left behind.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise RunFolderError(f"{out}: run folder already exists; pass --overwrite (overwrite=True) or choose another --out.")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.partial-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    handler = _attach_log(staging / "automed.log")
    try:
        _fit_into(recipe, Path(data), staging, progress, cache_from=out if out.is_dir() else None)
    except BaseException:
        _detach_log(handler)
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _detach_log(handler)
    _swap_into_place(staging, out)
    return out


def _fit_into(recipe: Recipe, data: Path, folder: Path, progress: bool, cache_from: Path | None) -> None:
    from automed.environment import hardware, versions
    from automed.report import write_reports

    started = time.monotonic()
    log.info("automed fit: %s -> %s", data, folder)
    rung_classes = _check_rungs(recipe)
    prepare = _prepare_segmentation if recipe.task == "segmentation" else _prepare_classification
    dataset, fingerprint, summary, splits, folds = prepare(recipe, data, progress)
    recipe = recipe.replace(data_format=dataset.format)
    recipe.to_yaml(folder / "recipe.yaml")
    _write_json(folder / "fingerprint.json", summary)
    _write_json(folder / "splits.json", splits)
    _write_json(folder / "run.json", {
        "data": str(data.resolve()), "format": dataset.format, "seed": recipe.random_state,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "hardware": hardware(), "versions": versions(),
    })
    if cache_from is not None and (cache_from / "cache").is_dir():
        shutil.copytree(cache_from / "cache", folder / "cache")
    for spec, cls in zip(recipe.rungs, rung_classes):
        remaining = None if recipe.budget_s is None else recipe.budget_s - (time.monotonic() - started)
        context = FitContext(dataset, fingerprint, folds, folder / "rungs" / spec.name, recipe.random_state,
                             _n_jobs(recipe), remaining, f"sqlite:///{folder / 'optuna.db'}", progress,
                             splits=splits, cache_folder=folder / "cache", metric=recipe.metric,
                             include_background=recipe.include_background)
        _fit_rung(cls(spec.params), recipe, context)
    meta = json.loads((folder / "run.json").read_text())
    meta["fit_seconds"] = time.monotonic() - started
    _write_json(folder / "run.json", meta)
    write_reports(folder)
    log.info("done in %.1fs", meta["fit_seconds"])


def _prepare_segmentation(recipe: Recipe, data: Path, progress: bool) -> tuple:
    from automed.data.dataset import open_dataset
    from automed.data.fingerprint import compute_fingerprint
    from automed.data.splits import make_folds

    dataset = open_dataset(data, recipe.data_format)
    fingerprint = compute_fingerprint(dataset, recipe.random_state, progress)
    log.info("dataset: %d cases, %dD, classes %s, format %s", fingerprint.n_cases, fingerprint.dims,
             fingerprint.classes, dataset.format)
    folds = make_folds([c.case_id for c in dataset.cases], [c.group for c in dataset.cases],
                       recipe.n_folds, recipe.random_state)
    splits = {"kind": "cv", "n_folds": recipe.n_folds, "random_state": recipe.random_state,
              "grouped": any(c.group for c in dataset.cases), "folds": folds}
    return dataset, fingerprint, fingerprint.to_dict(), splits, folds


def _prepare_classification(recipe: Recipe, data: Path, progress: bool) -> tuple:
    from automed.data.classification import open_classification, summarize
    from automed.data.splits import holdout_split, stratified_folds

    dataset = open_classification(data, recipe.data_format)
    summary = summarize(dataset)
    log.info("dataset: %d images, %dD, classes %s, format %s", summary["n_cases"], summary["dims"],
             list(dataset.classes), dataset.format)
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


def _check_rungs(recipe: Recipe) -> list[type]:
    from automed.rungs import rung_class

    return [rung_class(spec.name, recipe.task) for spec in recipe.rungs]


def _fit_rung(rung: Any, recipe: Recipe, context: Any) -> None:
    from automed.ladder.cost import CostMeter
    from automed.report.tables import summarize_segmentation

    context.folder.mkdir(parents=True)
    log.info("rung %s: fitting (budget %s s)", rung.name,
             None if context.budget_s is None else round(context.budget_s))
    with CostMeter() as meter:
        outcome = rung.fit(context)
    summary = outcome.summary
    if summary is None:
        metric, per_class = summarize_segmentation(outcome.per_case, context.fingerprint.classes,
                                                   recipe.include_background, recipe.random_state)
        summary = {"metric": metric, "per_class": per_class}
    result = {
        "name": rung.name, "status": "done", **summary,
        "cost": {"fit_seconds": meter.seconds_, "peak_rss_bytes": meter.peak_rss_bytes_,
                 "peak_vram_bytes": meter.peak_vram_bytes_, "n_params": outcome.n_params,
                 "predict_seconds_per_case": outcome.predict_seconds_per_case, "device": "cpu",
                 "n_jobs": context.n_jobs},
        "postprocessing": outcome.postprocessing, "details": outcome.details, "per_case": outcome.per_case,
    }
    _write_json(context.folder / "result.json", result)
    metric = summary["metric"]
    ci = "n/a" if metric["ci_low"] is None else f"{metric['ci_low']:.4f}, {metric['ci_high']:.4f}"
    log.info("rung %s: %s %.4f [%s] in %.1fs, peak RSS %.2f GB", rung.name, metric["name"], metric["mean"], ci,
             meter.seconds_, meter.peak_rss_bytes_ / 1e9)


def _n_jobs(recipe: Recipe) -> int:
    return recipe.n_jobs if recipe.n_jobs > 0 else _n_cores()


def _n_cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(_finite(value), indent=2, allow_nan=False, default=_jsonable))


def _finite(value: Any) -> Any:
    """NaN/Inf (e.g. an undefined HD95) become JSON null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _jsonable(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _attach_log(path: Path) -> logging.Handler:
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    return handler


def _detach_log(handler: logging.Handler) -> None:
    log.removeHandler(handler)
    handler.close()


def _swap_into_place(staging: Path, out: Path) -> None:
    """Rename the finished staging folder to ``out``, replacing an old run only now."""
    if out.exists():
        trash = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
        out.rename(trash)
        staging.rename(out)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        staging.rename(out)
