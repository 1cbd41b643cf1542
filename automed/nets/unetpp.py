"""MONAI's UNet++ (``BasicUNetPlusPlus``): five fixed levels with nested, dense skip pathways."""

from __future__ import annotations

from typing import Any

from automed.nets.base import Architecture

__all__ = ["UNetPlusPlus"]


class UNetPlusPlus(Architecture):
    """``monai.networks.nets.BasicUNetPlusPlus``, features scaled from ``width``; its last head is the output."""

    def size_divisor(self, hp: dict[str, Any]) -> int:
        return 16

    def build(self, spatial_dims: int, in_channels: int, out_channels: int, width: int, hp: dict[str, Any]) -> Any:
        import torch
        from monai.networks.nets import BasicUNetPlusPlus

        class LastHead(torch.nn.Module):
            """The last of the outputs UNet++ lists (its deep-supervision heads)."""

            def __init__(self, inner: Any) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, x: Any) -> Any:
                return self.inner(x)[-1]

        features = (width, width, 2 * width, 4 * width, 8 * width, width)
        return LastHead(BasicUNetPlusPlus(spatial_dims, in_channels, out_channels, features=features))
