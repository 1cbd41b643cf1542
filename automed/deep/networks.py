"""Segmentation networks from MONAI, built from a few searchable numbers."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["KINDS", "build_network", "count_parameters", "size_divisor"]

KINDS = ("unet", "unetpp")


def build_network(kind: str, spatial_dims: int, in_channels: int, out_channels: int, width: int, depth: int,
                  res_units: int = 0, dropout: float = 0.0) -> Any:
    """A MONAI network.

    Parameters
    ----------
    kind : {"unet", "unetpp"}
        ``monai.networks.nets.UNet`` (``depth`` resolution levels, channels doubling
        from ``width``) or ``BasicUNetPlusPlus`` (its fixed five levels, features
        scaled from ``width``; ``depth`` and ``res_units`` are ignored).
    """
    from monai.networks.nets import BasicUNetPlusPlus, UNet

    if kind == "unet":
        return UNet(spatial_dims, in_channels, out_channels, channels=[width * 2**i for i in range(depth)],
                    strides=[2] * (depth - 1), num_res_units=res_units, norm="INSTANCE", dropout=dropout)
    if kind == "unetpp":
        features = (width, width, 2 * width, 4 * width, 8 * width, width)
        return _FinalOutput(BasicUNetPlusPlus(spatial_dims, in_channels, out_channels, features=features,
                                              dropout=dropout))
    raise ValueError(f"unknown network kind {kind!r}; expected one of {KINDS}")


def size_divisor(kind: str, depth: int) -> int:
    """Input sizes must be multiples of this (one halving per level below the top)."""
    return 2 ** (depth - 1) if kind == "unet" else 16


def count_parameters(model: Any) -> int:
    return int(sum(p.numel() for p in model.parameters()))



class _FinalOutput(torch.nn.Module):
    """Return the last of the outputs a network lists (UNet++'s deep-supervision heads)."""

    def __init__(self, inner: Any) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: Any) -> Any:
        return self.inner(x)[-1]
