"""Rung ``unet3d``: a patch-based MONAI 3D U-Net with sliding-window inference; skipped on 2D data."""

from __future__ import annotations

from automed.rungs.deep import DeepSegmentationRung

__all__ = ["UNet3DRung"]


class UNet3DRung(DeepSegmentationRung):
    """3D U-Net (``monai.networks.nets.UNet``) on patches, given six times a 2D rung's share of the budget.

    On the hippocampus benchmark it was the best rung and still improving when its time ran
    out (best epoch 161 of 176 with a 4x share), so it gets the largest share.
    """

    name = "unet3d"
    kind = "unet"
    network_dims = 3
    batch_voxels = 2**18
    default_max_patch = 128
    cost_weight = 6.0
