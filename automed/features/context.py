"""Auto-context features: a first classifier's class probabilities, smoothed at several scales and
read at offsets along each axis, as extra per-voxel inputs to a second classifier (Tu & Bai,
IEEE TPAMI 2010).

The second stage sees what the first believed about each voxel's neighbourhood (is there a
confident anterior region four voxels above? a blob of posterior around it?), which a filter bank
of the image alone cannot express.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["OFFSET_SIGMA", "context_features", "n_context_features"]

#: The offsets are read from each probability smoothed at this scale (voxels), so that one noisy
#: voxel of the first stage does not decide them.
OFFSET_SIGMA = 2.0


def n_context_features(n_classes: int, dims: int, sigmas: Sequence[float], offsets: Sequence[int]) -> int:
    """Columns :func:`context_features` gives for ``dims`` spatial axes."""
    return (n_classes - 1) * (1 + len(sigmas) + 2 * dims * len(offsets))


def context_features(proba: np.ndarray, sigmas: Sequence[float], offsets: Sequence[int] = ()) -> np.ndarray:
    """Per-voxel context features of class probabilities ``(n_classes, *spatial)``.

    Returns
    -------
    ndarray, shape (n_voxels, n_context_features(...)), float32
        Rows in C order of the voxels. For each foreground class: its probability as it is,
        Gaussian-smoothed with each of ``sigmas`` (voxels), then smoothed at :data:`OFFSET_SIGMA`
        and read ``d`` voxels after, then before, along each axis for each ``d`` in ``offsets``
        (the edge value beyond the image). The background is left out: it is one minus the others.
    """
    from scipy.ndimage import gaussian_filter, shift

    columns = []
    for probability in np.asarray(proba, dtype=np.float32)[1:]:
        columns.append(probability.ravel())
        columns.extend(gaussian_filter(probability, sigma, mode="nearest").ravel() for sigma in sigmas)
        if offsets:
            smooth = gaussian_filter(probability, OFFSET_SIGMA, mode="nearest")
            for axis in range(smooth.ndim):
                for distance in offsets:
                    for sign in (-1, 1):
                        step = [0] * smooth.ndim
                        step[axis] = sign * distance
                        columns.append(shift(smooth, step, order=0, mode="nearest").ravel())
    return np.stack(columns, axis=1)
