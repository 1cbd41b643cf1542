"""What one class's structure in a class map looks like (its volume, pieces and centroid), and how much of a
difference between cases can be chance."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["MIN_SCALE", "structure_shape"]

MIN_SCALE = {"volume": 0.1, "pieces": 0.5, "position": 0.02}
"""Floors of the robust scales (see :func:`~automed.robust.robust_z`): a log volume 10 % off, half a piece, a
centroid 2 % of the image's extent (or one voxel, if more) off count as one robust SD at most, so that a few alike
cases do not make a small difference implausible."""


def structure_shape(mask: np.ndarray) -> dict[str, Any]:
    """``volume`` (voxels), ``pieces`` (connected components), ``centroid`` (a fraction of each axis; NaN when
    empty) and ``extent`` (the grid's shape) of a boolean ``mask``."""
    from scipy import ndimage

    _, pieces = ndimage.label(mask)
    centroid = (np.array(ndimage.center_of_mass(mask)) / np.array(mask.shape) if mask.any()
                else np.full(mask.ndim, np.nan))
    return {"volume": int(mask.sum()), "pieces": int(pieces), "centroid": centroid, "extent": mask.shape}
