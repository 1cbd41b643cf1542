"""Rung ``unet3d``: a patch-based MONAI 3D U-Net with sliding-window inference; skipped on 2D data."""

from __future__ import annotations

from automed.rungs.deep import DeepSegmentationRung

__all__ = ["UNet3DRung"]


class UNet3DRung(DeepSegmentationRung):
    """3D U-Net (``monai.networks.nets.UNet``) on patches, given twice the 2D rungs' share of the budget."""

    name = "unet3d"
    kind = "unet"
    network_dims = 3
    batch_voxels = 2**19
    default_max_patch = 128
    cost_weight = 4.0
