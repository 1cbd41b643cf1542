"""The classical classifier's features: whole-image filter-bank and radiomics features of every case,
extracted in parallel and cached in the run folder, keyed by the dataset and the feature parameters."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from automed.rungs.base import FitContext

__all__ = ["cached_features", "case_features", "feature_cache", "features_of", "probe_features", "varying_columns",
           "where"]

log = logging.getLogger("automed")

FEATURE_PARAMS = ("feature_sets", "radiomics_filters", "roi", "bin_count", "pixels_side", "colour_space")
"""The rung parameters that change the features (and so the cache key)."""


def feature_cache(params: Any, context: FitContext) -> Path | None:
    """Where the run keeps the features of its dataset's cases for these parameters (None without a cache)."""
    if context.cache_folder is None:
        return None
    dataset = context.dataset
    key = hashlib.sha256(json.dumps({
        "source": str(Path(dataset.source).resolve()), "format": dataset.format,
        "cases": [c.case_id for c in dataset.cases], "params": {k: getattr(params, k) for k in FEATURE_PARAMS},
        "channels": [dataset.n_channels, dataset.luminance],
    }, sort_keys=True).encode()).hexdigest()[:16]
    return context.cache_folder / f"features-{key}.npz"


def cached_features(params: Any, context: FitContext) -> tuple[list[str], np.ndarray, float]:
    """Feature names, the feature matrix of every case and the core-seconds per case it took to
    extract them, read from the run's cache when it holds them."""
    dataset = context.dataset
    cache = feature_cache(params, context)
    if cache is not None and cache.is_file():
        stored = np.load(cache, allow_pickle=False)
        log.info("classical: features read from cache %s", cache.name)
        return stored["names"].tolist(), stored["X"], float(stored["seconds_per_case"])
    started = time.monotonic()
    rows = features_of(params, dataset, list(dataset.cases), context.n_jobs, context.progress, context.cluster)
    seconds_per_case = (time.monotonic() - started) * context.n_jobs / len(rows)
    names = sorted(rows[0])
    X = np.array([[row[n] for n in names] for row in rows], dtype=np.float64)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f".{cache.stem}.partial.npz")
        np.savez_compressed(tmp, X=X, names=np.array(names), seconds_per_case=seconds_per_case)
        tmp.replace(cache)
    return names, X, seconds_per_case


def probe_features(params: Any, dataset: Any, n_images: int = 6) -> tuple[float, int]:
    """Core-seconds per image, and how many features vary, measured on ``n_images`` of ``dataset``'s own images
    spread over it, one after the other in this process; the first one, which pays the imports, is not timed.

    The features that vary across the probe stand for those the rung keeps (it drops constant and collinear
    ones): measured against the count kept on all images, 1.08x on BreastMNIST, 1.17x on PH2 and 0.76x on
    AdrenalMNIST3D (whose whole-volume radiomics hold hundreds of constant shape features).
    """
    cases = list(dataset.cases)
    chosen = cases[:: max(1, len(cases) // n_images)][:n_images]
    rows = features_of(params, dataset, chosen[:1], 1, False)
    timed = chosen[1:] or chosen
    started = time.perf_counter()
    rows += features_of(params, dataset, timed, 1, False)
    seconds = (time.perf_counter() - started) / len(timed)
    return seconds, varying_columns(np.array([[row[n] for n in sorted(rows[0])] for row in rows], dtype=np.float64))


def varying_columns(X: np.ndarray) -> int:
    """How many columns of the feature matrix ``X`` vary (all of them when none does)."""
    return int(np.count_nonzero(np.nanstd(X, axis=0) > 0)) or X.shape[1]


def features_of(params: Any, dataset: Any, cases: list[Any], n_jobs: int, progress: bool,
                cluster: Any = None) -> list[dict[str, float]]:
    """Feature dicts of ``cases`` (parallel over cases: local processes, or Dask tasks on ``cluster``);
    checks they share one dimensionality."""
    from automed.cluster.case_map import map_cases
    from automed.data.classification import load_image
    from automed.errors import DataError

    # Array-backed cases (MedMNIST) ship only their own pixels to the workers, not the dataset.
    layout = replace(dataset, cases=(), arrays={})
    jobs = ((case, params, load_image(dataset, case) if case.index is not None else None, layout) for case in cases)
    results = list(map_cases(case_features, jobs, len(cases), n_jobs, cluster, "classical features", progress))
    dims = {}
    for case, (ndim, _) in zip(cases, results):
        dims.setdefault(ndim, case)
    if len(dims) > 1:
        mixed = " vs ".join(f"{where(dataset, c)} is {d}D" for d, c in sorted(dims.items()))
        raise DataError(f"Images of different dimensionality are mixed: {mixed}.")
    return [features for _, features in results]


def case_features(case: Any, params: Any, image: np.ndarray | None = None,
                  layout: Any = None) -> tuple[int, dict[str, float]]:
    """Feature dict of one case (worker process); ``image`` is read from the case's file, as
    ``layout`` (the dataset without its cases) reads it, when not given."""
    from automed.data.classification import load_image, load_mask
    from automed.features.whole_image import image_features

    if image is None:
        image = load_image(layout, case)
    mask = load_mask(case, image.shape[1:])
    if mask is None and params.roi == "nonzero" and (image > 0).any():
        mask = (image > 0).any(axis=0)
    return image.ndim - 1, image_features(image, mask, params.feature_sets, params.bin_count,
                                          params.radiomics_filters, params.pixels_side, params.colour_space == "lab")


def where(dataset: Any, case: Any) -> str:
    """Where a case's image is, for messages: its file, or the dataset and the case id."""
    return str(case.image_path) if case.image_path is not None else f"{dataset.source} [{case.case_id}]"
