"""Rung ``inception_v3``: torchvision's Inception-v3 with ImageNet weights, frozen or fine-tuned at 299 px."""

from __future__ import annotations

from automed.rungs.transfer import TransferRung

__all__ = ["InceptionV3Rung"]


class InceptionV3Rung(TransferRung):
    """Inception-v3 (27 M parameters, auxiliary head dropped); 2048 pooled features feed a new linear head."""

    name = "inception_v3"
    arch = "inception_v3"
