"""Rung ``unet2d``: a MONAI 2D U-Net; 3D volumes are segmented slice by slice.

Slices are taken along the coarsest axis (see :func:`automed.deep.volumes.slice_axis`),
the stacked predictions get 3D connected-component post-processing where it helps.
"""

from __future__ import annotations

from automed.rungs.deep import DeepSegmentationRung

__all__ = ["UNet2DRung"]


class UNet2DRung(DeepSegmentationRung):
    """2D U-Net (``monai.networks.nets.UNet``)."""

    name = "unet2d"
    kind = "unet"
    network_dims = 2
    batch_voxels = 2**18
    default_max_patch = 256
