"""Robust outlier scores: how far a value lies from the median of its peers, in robust standard deviations."""

from __future__ import annotations

import numpy as np

__all__ = ["robust_z"]


def robust_z(values: np.ndarray, min_scale: float = 0.0) -> np.ndarray:
    """Modified z-scores ``(x - median) / (1.4826 MAD)`` of the finite ``values`` (NaN stays NaN).

    Where more than half the values are equal (MAD 0), the mean absolute deviation scaled to a
    standard deviation (x 1.2533) replaces it, as Iglewicz and Hoaglin advise; all equal: zeros.
    ``min_scale`` floors the scale: a difference smaller than it is never far, however alike the
    other values are (a few cases can agree by chance).
    """
    from scipy.stats import median_abs_deviation

    x = np.asarray(values, dtype=float)
    finite = x[np.isfinite(x)]
    if finite.size < 3:
        return np.where(np.isfinite(x), 0.0, np.nan)
    centre = np.median(finite)
    scale = median_abs_deviation(finite, scale="normal")
    if scale == 0:
        scale = 1.2533 * np.mean(np.abs(finite - centre))
    scale = max(scale, min_scale)
    if scale == 0:
        return np.where(np.isfinite(x), 0.0, np.nan)
    return (x - centre) / scale
