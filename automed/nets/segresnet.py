"""MONAI's SegResNet (Myronenko 2018): residual encoder blocks and a light decoder, with instance norm.

MONAI's default group norm (8 groups) kept the network predicting only background for its
first ~75 steps on a hippocampus crop, and for all 7 epochs of a 5-minute ladder rung (Dice 0);
with instance norm, as nnU-Net normalises, it segmented the crop by step 25.
"""

from __future__ import annotations

from typing import Any

from automed.nets.base import Architecture

__all__ = ["SegResNet"]

BLOCKS_DOWN = (1, 2, 2, 4, 4)  # residual blocks per level: MONAI's default (1, 2, 2, 4), one more level for depth 5


class SegResNet(Architecture):
    """``monai.networks.nets.SegResNet`` with ``depth`` levels (from the rung's ``depths``) and
    ``width`` initial filters."""

    def search_space(self, trial: Any, params: Any) -> dict[str, Any]:
        return {"depth": trial.suggest_categorical("depth", list(params.depths))}

    def default(self, params: Any) -> dict[str, Any]:
        return {"depth": params.depths[0]}

    def largest(self, params: Any) -> dict[str, Any]:
        return {"depth": max(params.depths)}

    def size_divisor(self, hp: dict[str, Any]) -> int:
        return 2 ** (hp["depth"] - 1)

    def build(self, spatial_dims: int, in_channels: int, out_channels: int, width: int, hp: dict[str, Any]) -> Any:
        from monai.networks.nets import SegResNet as MonaiSegResNet

        depth = hp["depth"]
        return MonaiSegResNet(spatial_dims, init_filters=width, in_channels=in_channels, out_channels=out_channels,
                              blocks_down=BLOCKS_DOWN[:depth], blocks_up=(1,) * (depth - 1), norm="INSTANCE")
