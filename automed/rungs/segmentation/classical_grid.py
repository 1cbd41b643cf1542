"""The classical rung's own grid: coarser than the working grid when cases are large or its
allotment is tight.

Its features, voxel sampling and model work on each case reduced by per-axis ``factors``, and
its probabilities are interpolated back onto the working grid before the decision, so it is
scored, post-processed and predicted on the same grid as every other rung. The finest axes are
coarsened first (nnU-Net's rule for its low-resolution configuration), so an anisotropic CT
loses in-plane resolution before it loses slices.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from automed.data.resample import resample_image, resample_labels

__all__ = ["coarsening_factors", "coarse_shape", "to_coarse", "to_fine"]

#: Each step coarsens the finest axes by this factor.
STEP = 1.05
#: Axes within this ratio of the finest (effective) spacing are coarsened together.
SAME_AXIS_RATIO = 1.5


def coarsening_factors(shape: Sequence[int], spacing: Sequence[float], max_voxels: int) -> tuple[float, ...]:
    """Per-axis factors that bring a case of ``shape`` and ``spacing`` to at most ``max_voxels``
    voxels, coarsening the finest axes first (all ones when it already fits).

    Examples
    --------
    >>> coarsening_factors((64, 64), (1.0, 1.0), 10_000)
    (1.0, 1.0)
    >>> f = coarsening_factors((40, 512, 512), (5.0, 0.7, 0.7), 1_000_000)
    >>> f[0], f[1] > 2
    (1.0, True)
    """
    shape_arr, spacing_arr = np.asarray(shape, float), np.asarray(spacing, float)
    factors = np.ones_like(shape_arr)
    while np.prod(np.maximum(1, np.round(shape_arr / factors))) > max_voxels:
        effective = spacing_arr * factors
        finest = effective.min()
        factors[effective <= finest * SAME_AXIS_RATIO] *= STEP
    return tuple(round(float(f), 4) for f in factors)


def coarse_shape(shape: Sequence[int], factors: Sequence[float]) -> tuple[int, ...]:
    """The shape of a case of ``shape`` on the coarse grid (at least 2 voxels per axis)."""
    return tuple(max(2, int(round(n / f))) for n, f in zip(shape, factors))


def to_coarse(image: np.ndarray, label: np.ndarray | None, roi: np.ndarray | None,
              factors: Sequence[float]) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """A ``(C, *spatial)`` image, its label and region of interest on the coarse grid
    (unchanged when every factor is 1)."""
    if all(f == 1 for f in factors):
        return image, label, roi
    shape = coarse_shape(image.shape[1:], factors)
    return (resample_image(image, shape), None if label is None else resample_labels(label, shape),
            None if roi is None else resample_labels(roi, shape))


def to_fine(proba: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Class probabilities ``(n_classes, *coarse)`` interpolated linearly onto ``shape``."""
    return resample_image(proba, shape)
