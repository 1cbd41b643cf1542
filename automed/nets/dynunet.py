"""MONAI's DynUNet, nnU-Net's architecture: plain conv blocks, instance norm, leaky ReLU, channels
doubling from ``width`` up to 320, and deep supervision of the upper decoder levels."""

from __future__ import annotations

from typing import Any

from automed.nets.base import Architecture

__all__ = ["DynUNet"]

MAX_FILTERS = 320  # nnU-Net's cap on channels per level


class DynUNet(Architecture):
    """``monai.networks.nets.DynUNet`` with ``depth`` levels (from the rung's ``depths``), trained with
    MONAI's ``DeepSupervisionLoss`` over its full-resolution output and up to two upsampled deeper heads."""

    def search_space(self, trial: Any, params: Any) -> dict[str, Any]:
        return {"depth": trial.suggest_categorical("depth", list(params.depths)),
                "res_block": trial.suggest_categorical("res_block", [False, True])}

    def default(self, params: Any) -> dict[str, Any]:
        return {"depth": params.depths[0], "res_block": False}

    def largest(self, params: Any) -> dict[str, Any]:
        return {"depth": max(params.depths), "res_block": True}

    def size_divisor(self, hp: dict[str, Any]) -> int:
        return 2 ** (hp["depth"] - 1)

    def training_loss(self, loss: Any) -> Any:
        from monai.losses import DeepSupervisionLoss

        combined = DeepSupervisionLoss(loss, weight_mode="exp")

        def heads_loss(output: Any, target: Any) -> Any:
            # in training the network stacks its heads on axis 1: (batch, heads, classes, *spatial)
            return combined(list(output.unbind(1)) if output.dim() == target.dim() + 1 else output, target)

        return heads_loss

    def build(self, spatial_dims: int, in_channels: int, out_channels: int, width: int, hp: dict[str, Any]) -> Any:
        from monai.networks.nets import DynUNet as MonaiDynUNet

        depth = hp["depth"]
        strides = [1] + [2] * (depth - 1)
        return MonaiDynUNet(spatial_dims, in_channels, out_channels, kernel_size=[3] * depth, strides=strides,
                            upsample_kernel_size=strides[1:],
                            filters=[min(width * 2**i, MAX_FILTERS) for i in range(depth)],
                            deep_supervision=True, deep_supr_num=min(2, depth - 2), res_block=hp["res_block"])
