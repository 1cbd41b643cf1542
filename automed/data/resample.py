"""Resampling a case onto a working grid of a target spacing, and its predictions back.

Images are interpolated linearly (anti-aliased when the grid gets coarser); labels and masks
class by class, as nnU-Net does: each class's indicator is interpolated linearly and every
voxel takes the class whose indicator is highest, which keeps thin structures and smooth
boundaries that nearest-neighbour resampling breaks into steps. scikit-image's ``resize`` does
the interpolation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from automed.data.io import Geometry

__all__ = ["grid_shape", "resample_image", "resample_labels", "resampled_geometry"]


def grid_shape(shape: Sequence[int], spacing: Sequence[float], target: Sequence[float]) -> tuple[int, ...]:
    """The array shape that covers the extent of ``shape`` x ``spacing`` at ``target`` spacing
    (all in array axis order).

    Examples
    --------
    >>> grid_shape((575, 765), (1.0, 1.0), (2.5, 2.5))
    (230, 306)
    """
    return tuple(max(1, int(round(n * s / t))) for n, s, t in zip(shape, spacing, target))


def resample_image(image: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``(C, *spatial)`` float32 image resized to ``(C, *shape)``, linearly."""
    from skimage.transform import resize

    if image.shape[1:] == tuple(shape):
        return image
    coarser = any(new < old for new, old in zip(shape, image.shape[1:]))
    return resize(image, (len(image), *shape), order=1, anti_aliasing=coarser, preserve_range=True).astype(np.float32)


def resample_labels(label: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """An integer label map resized to ``shape`` class by class (see the module)."""
    from skimage.transform import resize

    if label.shape == tuple(shape):
        return label
    values = np.unique(label)
    best = np.full(shape, -1.0, dtype=np.float32)
    out = np.zeros(shape, dtype=label.dtype)
    for value in values:
        score = resize((label == value).astype(np.float32), shape, order=1, anti_aliasing=False)
        better = score > best
        out[better], best[better] = value, score[better]
    return out


def resampled_geometry(geometry: Geometry, old_shape: tuple[int, ...], new_shape: tuple[int, ...]) -> Geometry:
    """The geometry of the same extent on ``new_shape`` (array order; the geometry is x-first, as
    SimpleITK's): the spacing scaled, the origin moved to the centre of the new first voxel."""
    factors = np.array([old / new for old, new in zip(old_shape[::-1], new_shape[::-1])])
    spacing = np.asarray(geometry.spacing) * factors
    direction = np.asarray(geometry.direction).reshape(len(spacing), len(spacing))
    origin = np.asarray(geometry.origin) + direction @ ((spacing - np.asarray(geometry.spacing)) / 2)
    return Geometry(tuple(spacing.tolist()), tuple(origin.tolist()), geometry.direction)
