"""Segmentation metrics per case and class (MONAI) and bootstrap summaries (SciPy)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["FOREGROUND", "TEST_SCORES", "THRESHOLDS", "choose_threshold", "classification_scores", "classification_summary",
           "counted_dice_per_class", "decide_classes", "dice_per_class", "paired_classification_gain",
           "segmentation_scores", "summarize"]

#: Key of the union of all foreground classes in :func:`segmentation_scores` (two or more of them).
FOREGROUND = "foreground"
#: What a classification rung reports of its test cases (``result.json`` ``test``).
TEST_SCORES = ("auc", "accuracy", "balanced_accuracy", "qwk", "confusion_matrix")


def _one_hot(label: np.ndarray, n_classes: int):
    import torch

    return torch.from_numpy(np.moveaxis(np.eye(n_classes, dtype=bool)[label], -1, 0)[None])


def dice_per_class(pred: np.ndarray, truth: np.ndarray, n_classes: int) -> np.ndarray:
    """Dice of every class (1.0 where both masks are empty), shape ``(n_classes,)``."""
    from monai.metrics import compute_dice

    dice = compute_dice(_one_hot(pred, n_classes), _one_hot(truth, n_classes), include_background=True,
                        ignore_empty=False, num_classes=n_classes)
    return dice[0].numpy().astype(float)


def counted_dice_per_class(pred: np.ndarray, truth: np.ndarray, n_classes: int) -> np.ndarray:
    """:func:`dice_per_class` from one confusion count: the same values (tested), about 15 times faster.

    Written by hand for the loops that choose a background weight or post-processing, which score
    every case 10 to 20 times: MONAI's one-hot tensors cost about 8 ms a hippocampus case there, a
    third of a minute per fit. Reported scores stay MONAI's.
    """
    counts = np.bincount(truth.ravel().astype(np.int64) * n_classes + pred.ravel(),
                         minlength=n_classes * n_classes).reshape(n_classes, n_classes)
    overlap = np.diag(counts).astype(float)
    total = counts.sum(axis=0) + counts.sum(axis=1)
    return np.where(total > 0, 2 * overlap / np.maximum(total, 1), 1.0)


def segmentation_scores(pred: np.ndarray, truth: np.ndarray, n_classes: int,
                        spacing: Sequence[float]) -> dict[int, dict[str, float]]:
    """Dice and HD95 of every class for one case.

    Parameters
    ----------
    pred, truth : ndarray of int
        Class-index maps of the same shape.
    n_classes : int
        Number of classes including background (class 0).
    spacing : sequence of float
        Voxel size in array axis order; HD95 is in those units (mm for medical images).

    Returns
    -------
    dict
        ``{class: {"dice": float, "hd95": float}}``, plus ``"foreground"``, the union of every
        class but the background (e.g. BraTS's whole tumour), when there are two or more.
        Dice is 1.0 when both masks are empty. HD95 is 0.0 when both are empty and NaN when
        exactly one is (undefined); the background's is NaN, not computed: its surface is the
        other classes' (nnU-Net does not report it either), and on a CT-sized volume with a
        noisy prediction it takes minutes.
    """
    dice = dice_per_class(pred, truth, n_classes)
    scores: dict[int | str, dict[str, float]] = {
        c: {"dice": float(dice[c]), "hd95": math.nan if c == 0 else _hd95(pred == c, truth == c, spacing)}
        for c in range(n_classes)}
    if n_classes > 2:
        scores[FOREGROUND] = {"dice": float(dice_per_class((pred > 0).astype(np.uint8), (truth > 0).astype(np.uint8),
                                                           2)[1]), "hd95": _hd95(pred > 0, truth > 0, spacing)}
    return scores


#: Surface voxels whose distances HD95 takes per direction; from larger surfaces a seeded sample
#: is taken. MONAI's exact HD95 queries every surface voxel: on a CT-sized volume with a noisy
#: prediction (millions of surface voxels) that takes tens of minutes, while the 95th percentile
#: of 100,000 sampled distances differs from the exact one by well under a voxel. Smaller
#: surfaces are measured exactly, as MONAI does.
MAX_SURFACE_QUERIES = 100_000


def _hd95(pred: np.ndarray, truth: np.ndarray, spacing: Sequence[float]) -> float:
    """95th-percentile Hausdorff distance of two boolean masks, symmetric as MONAI's (the larger
    of the two directed 95th percentiles of surface-to-surface distances, on MONAI's mask
    edges); 0 when both are empty, NaN when one is."""
    from monai.metrics.utils import get_mask_edges

    has_p, has_t = bool(pred.any()), bool(truth.any())
    if not (has_p and has_t):
        return 0.0 if not (has_p or has_t) else math.nan
    edges_p, edges_t = get_mask_edges(pred, truth, crop=True)
    scale = np.asarray(spacing, dtype=float)
    points_p, points_t = np.argwhere(edges_p) * scale, np.argwhere(edges_t) * scale
    return max(_directed_p95(points_p, points_t), _directed_p95(points_t, points_p))


def _directed_p95(query: np.ndarray, surface: np.ndarray) -> float:
    from scipy.spatial import KDTree

    if len(query) > MAX_SURFACE_QUERIES:
        query = query[np.random.default_rng(0).choice(len(query), MAX_SURFACE_QUERIES, replace=False)]
    return float(np.percentile(KDTree(surface, leafsize=32).query(query, k=1)[0], 95))


def summarize(values: Sequence[float], random_state: int = 0, n_resamples: int = 2000) -> dict[str, float | int | None]:
    """Mean, std and percentile-bootstrap 95% CI of the mean over the finite values.

    Returns
    -------
    dict
        ``mean``, ``std``, ``ci_low``, ``ci_high`` (None when fewer than 2 values),
        ``n`` (finite values used) and ``n_undefined`` (NaN values dropped).
    """
    from scipy.stats import bootstrap

    arr = np.asarray(values, dtype=float)
    finite = arr[np.isfinite(arr)]
    out: dict[str, float | int | None] = {
        "mean": float(finite.mean()) if finite.size else None,
        "std": float(finite.std(ddof=1)) if finite.size > 1 else None,
        "ci_low": None, "ci_high": None, "n": int(finite.size), "n_undefined": int(arr.size - finite.size),
    }
    if finite.size > 1 and np.ptp(finite) > 0:
        ci = bootstrap((finite,), np.mean, n_resamples=n_resamples, method="percentile",
                       confidence_level=0.95, rng=np.random.default_rng(random_state)).confidence_interval
        out["ci_low"], out["ci_high"] = float(ci.low), float(ci.high)
    elif finite.size > 1:
        out["ci_low"] = out["ci_high"] = out["mean"]
    return out


def decide_classes(proba: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """Predicted class indices: ``proba[:, 1] >= threshold`` for binary tasks with a threshold, else argmax."""
    if threshold is not None and proba.shape[1] == 2:
        return (proba[:, 1] >= threshold).astype(int)
    return proba.argmax(axis=1)


THRESHOLDS = ("accuracy", "balanced_accuracy", "fixed")


def choose_threshold(kind: str, y: np.ndarray, proba: np.ndarray) -> float:
    """Binary decision threshold on ``proba[:, 1]`` maximising ``kind`` on ``(y, proba)``; 0.5 when "fixed".

    Every threshold between two neighbouring predicted probabilities gives the same
    decisions, so the optimum is an interval; its midpoint is returned (the widest
    margin on both sides) rather than its edge, which sits on one case's probability.
    """
    from sklearn.metrics import accuracy_score, balanced_accuracy_score

    if kind == "fixed":
        return 0.5
    score = balanced_accuracy_score if kind == "balanced_accuracy" else accuracy_score
    candidates = np.unique(proba[:, 1])  # predict class 1 where p >= candidate
    values = np.array([score(y, (proba[:, 1] >= t).astype(int)) for t in candidates])
    best = int(np.argmax(values))
    last = best
    while last + 1 < len(candidates) and values[last + 1] == values[best]:
        last += 1
    lower = candidates[best - 1] if best > 0 else 0.0  # any t in (lower, candidates[last]] decides alike
    return float((lower + candidates[last]) / 2)


def classification_scores(y: np.ndarray, proba: np.ndarray, threshold: float | None) -> dict[str, float]:
    """AUC (binary, or macro one-vs-rest), accuracy, balanced accuracy and quadratic-weighted kappa
    (for ordered classes: an error costs the square of how many grades it is off); AUC is NaN with
    one class, kappa when truth and prediction are one and the same class."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, cohen_kappa_score, roc_auc_score

    pred = decide_classes(proba, threshold)
    if len(np.unique(y)) < 2:
        auc = math.nan
    elif proba.shape[1] == 2:
        auc = roc_auc_score(y, proba[:, 1])
    else:
        auc = roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=np.arange(proba.shape[1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        qwk = cohen_kappa_score(y, pred, weights="quadratic", labels=np.arange(proba.shape[1]))
    return {"auc": float(auc), "accuracy": float(accuracy_score(y, pred)),
            "balanced_accuracy": float(balanced_accuracy_score(y, pred)), "qwk": float(qwk)}


def classification_summary(y: np.ndarray, proba: np.ndarray, classes: Sequence[str], threshold: float | None,
                           random_state: int = 0, n_resamples: int = 1000) -> dict[str, Any]:
    """AUC (macro one-vs-rest), accuracy, balanced accuracy and quadratic-weighted kappa with bootstrap 95% CIs, per-class
    recall and precision, and the confusion matrix (rows: truth, columns: prediction).

    The bootstrap resamples cases; resamples holding a single class are skipped for AUC
    (it is undefined there), which is why this loop is written out instead of using
    :func:`scipy.stats.bootstrap`.
    """
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    y = np.asarray(y)
    point = classification_scores(y, proba, threshold)
    rng = np.random.default_rng(random_state)
    draws: dict[str, list[float]] = {k: [] for k in point}
    with warnings.catch_warnings():  # resamples holding one class make sklearn warn; they are handled here
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(n_resamples):
            index = rng.integers(0, len(y), len(y))
            for key, value in classification_scores(y[index], proba[index], threshold).items():
                if math.isfinite(value):
                    draws[key].append(value)
    out: dict[str, Any] = {}
    for key, value in point.items():
        low, high = (np.percentile(draws[key], [2.5, 97.5]) if len(draws[key]) > 1 else (None, None))
        out[key] = {"mean": value if math.isfinite(value) else None,
                    "ci_low": None if low is None else float(low), "ci_high": None if high is None else float(high)}
    pred = decide_classes(proba, threshold)
    labels = np.arange(len(classes))
    precision, recall, _, support = precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    out["per_class"] = {name: {"recall": float(r), "precision": float(p), "n": int(n)}
                        for name, r, p, n in zip(classes, recall, precision, support)}
    out["confusion_matrix"] = confusion_matrix(y, pred, labels=labels).tolist()
    out["n"] = int(len(y))
    return out


def paired_classification_gain(y: np.ndarray, proba_base: np.ndarray, proba_new: np.ndarray,
                               threshold_base: float | None, threshold_new: float | None, metric: str,
                               random_state: int = 0, n_resamples: int = 1000) -> dict[str, Any]:
    """``metric(new) - metric(base)`` on the same cases, with a paired bootstrap 95% CI.

    Each resample draws cases once and scores both models on them, so the CI reflects
    the difference, not two independent intervals.
    """
    y = np.asarray(y)

    def diff(index: np.ndarray) -> float:
        return (classification_scores(y[index], proba_new[index], threshold_new)[metric]
                - classification_scores(y[index], proba_base[index], threshold_base)[metric])

    point = diff(np.arange(len(y)))
    rng = np.random.default_rng(random_state)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        draws = [d for d in (diff(rng.integers(0, len(y), len(y))) for _ in range(n_resamples)) if math.isfinite(d)]
    low, high = np.percentile(draws, [2.5, 97.5]) if len(draws) > 1 else (None, None)
    return {"mean": point, "ci_low": None if low is None else float(low),
            "ci_high": None if high is None else float(high), "n": int(len(y))}
