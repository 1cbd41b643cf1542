"""torchvision's VGG16 (138 M parameters) at 224 px; its 4096 penultimate features feed the new head."""

from __future__ import annotations

from typing import Any

from automed.nets.base import TransferArchitecture

__all__ = ["VGG16"]


class VGG16(TransferArchitecture):
    """VGG16 with its last classifier layer removed."""

    torchvision_name = "vgg16"
    input_size = 224
    n_features = 4096

    def remove_classifier(self, model: Any) -> Any:
        import torch

        model.classifier[-1] = torch.nn.Identity()
        return model
