"""Rung ``cnn``: a small MONAI ResNet trained from scratch on the images (2D or 3D)."""

from __future__ import annotations

from automed.rungs.deep_classification import DeepClassifierRung

__all__ = ["CNNRung"]


class CNNRung(DeepClassifierRung):
    """ResNet with basic blocks, a stride-1 stem and no max pooling (suits small images)."""

    name = "cnn"
    arch = "resnet"
