"""Rung ``unetpp``: MONAI's UNet++ (``BasicUNetPlusPlus``) in 2D, slicing 3D volumes like ``unet2d``."""

from __future__ import annotations

from automed.rungs.deep import DeepSegmentationRung

__all__ = ["UNetPlusPlusRung"]


class UNetPlusPlusRung(DeepSegmentationRung):
    """2D UNet++ with nested, densely connected skip pathways."""

    name = "unetpp"
    kind = "unetpp"
    network_dims = 2
    batch_voxels = 2**16
    default_max_patch = 256
