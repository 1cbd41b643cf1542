"""Rung ``vgg16``: torchvision's VGG16 with ImageNet weights, frozen or fine-tuned at 224 px."""

from __future__ import annotations

from automed.rungs.transfer import TransferRung

__all__ = ["VGG16Rung"]


class VGG16Rung(TransferRung):
    """VGG16 (138 M parameters); its 4096 penultimate features feed a new linear head."""

    name = "vgg16"
    arch = "vgg16"
