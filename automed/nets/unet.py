"""MONAI's residual U-Net: ``depth`` levels, channels doubling from ``width``, searched residual units."""

from __future__ import annotations

from typing import Any

from automed.nets.base import Architecture

__all__ = ["UNet"]


class UNet(Architecture):
    """``monai.networks.nets.UNet`` with instance norm."""

    def search_space(self, trial: Any, params: Any) -> dict[str, Any]:
        return {"depth": trial.suggest_categorical("depth", list(params.depths)),
                "res_units": trial.suggest_categorical("res_units", [0, 2])}

    def default(self, params: Any) -> dict[str, Any]:
        return {"depth": params.depths[0], "res_units": 2}

    def largest(self, params: Any) -> dict[str, Any]:
        return {"depth": max(params.depths), "res_units": 2}

    def size_divisor(self, hp: dict[str, Any]) -> int:
        return 2 ** (hp["depth"] - 1)

    def build(self, spatial_dims: int, in_channels: int, out_channels: int, width: int, hp: dict[str, Any]) -> Any:
        from monai.networks.nets import UNet as MonaiUNet

        depth = hp["depth"]
        return MonaiUNet(spatial_dims, in_channels, out_channels, channels=[width * 2**i for i in range(depth)],
                         strides=[2] * (depth - 1), num_res_units=hp["res_units"], norm="INSTANCE")
