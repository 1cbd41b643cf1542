"""Displacement fields on the common grid: warping, their Jacobian, and the NIfTI displacement field ITK reads.

A displacement ``u`` has shape ``(dims, *grid)`` in grid voxels along the array axes: the moving image is
sampled at ``x + u(x)`` for every fixed-grid voxel ``x``. Every rung's field is warped and scored by these
functions (scipy's ``map_coordinates``), so rungs are compared by one yardstick, not by their own warpers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["displacement_image", "folding_fraction", "jacobian_determinant", "sd_log_jacobian", "warp"]


def warp(array: np.ndarray, displacement: np.ndarray, order: int = 1) -> np.ndarray:
    """``array`` (``grid`` or ``(channels, *grid)``) sampled at ``x + u(x)``: linear for images (``order`` 1),
    nearest for labels (``order`` 0); outside the grid, 0."""
    from scipy.ndimage import map_coordinates

    grid = displacement.shape[1:]
    coordinates = np.indices(grid, dtype=np.float32) + displacement.astype(np.float32)
    if array.ndim == len(grid):
        return map_coordinates(array, coordinates, order=order, mode="constant", cval=0).astype(array.dtype)
    return np.stack([warp(channel, displacement, order) for channel in array])


def jacobian_determinant(displacement: np.ndarray) -> np.ndarray:
    """det(I + grad u) at every voxel (central differences), the local volume change of the mapping."""
    dims = displacement.shape[0]
    gradient = np.stack([np.stack(np.gradient(displacement[i]), axis=0) for i in range(dims)])  # [i, j] = du_i/dx_j
    jacobian = gradient + np.eye(dims).reshape(dims, dims, *([1] * dims))
    return np.linalg.det(np.moveaxis(jacobian, (0, 1), (-2, -1)))


def folding_fraction(determinant: np.ndarray, region: np.ndarray | None = None) -> float:
    """The share of voxels (in ``region``) whose Jacobian determinant is not positive: the mapping folds there."""
    values = determinant if region is None else determinant[region]
    return float(np.mean(values <= 0))


def sd_log_jacobian(determinant: np.ndarray, region: np.ndarray | None = None) -> float:
    """The standard deviation of log det J (clipped to [1e-9, 1e9], as Learn2Reg computes it): its smoothness."""
    values = determinant if region is None else determinant[region]
    return float(np.std(np.log(np.clip(values, 1e-9, 1e9))))


def displacement_image(displacement: np.ndarray, fixed: Any, moving: Any) -> Any:
    """The displacement field in the fixed image's geometry, in physical units, as a SimpleITK vector image that
    ``sitk.DisplacementFieldTransform`` (and ITK, ANTs) read: ``T(p) = p + d(p)`` maps a fixed point ``p`` to
    the moving image's corresponding point.

    ``displacement`` is on the fixed volume's own voxels (the grid cropped to it, array axes); ``fixed`` and
    ``moving`` are the :class:`~automed.data.registration.Placement` of the two volumes on the grid.
    """
    import SimpleITK as sitk

    dims = displacement.shape[0]
    fixed_index = np.indices(fixed.shape, dtype=np.float64)
    # fixed voxel -> grid voxel -> + u -> moving's own voxel -> physical point
    moving_index = fixed_index + displacement + (np.asarray(fixed.offset) - np.asarray(moving.offset)).reshape(
        dims, *([1] * dims))
    moving_points = _physical(moving_index, moving)
    fixed_points = _physical(fixed_index, fixed)
    vectors = np.moveaxis(moving_points - fixed_points, 0, -1)  # (*shape, xyz)
    image = sitk.GetImageFromArray(vectors.astype(np.float64), isVector=True)
    image.SetSpacing(fixed.spacing)
    image.SetOrigin(fixed.origin)
    image.SetDirection(fixed.direction)
    return image


def _physical(index: np.ndarray, placement: Any) -> np.ndarray:
    """Physical points (x, y, z first axis) of array-order voxel indices ``index`` in a volume's geometry."""
    dims = index.shape[0]
    xyz = index[::-1].reshape(dims, -1)
    direction = np.asarray(placement.direction).reshape(dims, dims)
    points = np.asarray(placement.origin)[:, None] + direction @ (np.asarray(placement.spacing)[:, None] * xyz)
    return points.reshape(dims, *index.shape[1:])
