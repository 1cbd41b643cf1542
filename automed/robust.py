"""Robust outlier scores: how far a value lies from the median of its peers, in robust standard deviations."""

from __future__ import annotations

import numpy as np

__all__ = ["robust_centre_scale", "robust_z"]


def robust_centre_scale(values: np.ndarray, min_scale: float = 0.0) -> tuple[float, float]:
    """The median of the finite ``values`` and their robust standard deviation ``1.4826 MAD``.

    Where more than half the values are equal (MAD 0), the mean absolute deviation scaled to a
    standard deviation (x 1.2533) replaces it, as Iglewicz and Hoaglin advise. ``min_scale``
    floors the scale: a difference smaller than it is never far, however alike the other values
    are (a few cases can agree by chance). Fewer than three values: centre 0 and scale 0 (no
    peers to judge against).
    """
    from scipy.stats import median_abs_deviation

    x = np.asarray(values, dtype=float)
    finite = x[np.isfinite(x)]
    if finite.size < 3:
        return 0.0, 0.0
    centre = float(np.median(finite))
    scale = float(median_abs_deviation(finite, scale="normal"))
    if scale == 0:
        scale = 1.2533 * float(np.mean(np.abs(finite - centre)))
    return centre, max(scale, min_scale)


def robust_z(values: np.ndarray, min_scale: float = 0.0) -> np.ndarray:
    """Modified z-scores ``(x - median) / robust SD`` of the finite ``values`` (NaN stays NaN; see
    :func:`robust_centre_scale`); all values equal, or fewer than three: zeros."""
    x = np.asarray(values, dtype=float)
    centre, scale = robust_centre_scale(x, min_scale)
    if scale == 0:
        return np.where(np.isfinite(x), 0.0, np.nan)
    return (x - centre) / scale
