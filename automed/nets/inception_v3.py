"""torchvision's Inception-v3 (27 M parameters) at 299 px; its 2048 pooled features feed the new head."""

from __future__ import annotations

from typing import Any

from automed.nets.base import TransferArchitecture

__all__ = ["InceptionV3"]


class InceptionV3(TransferArchitecture):
    """Inception-v3 with its classifier and auxiliary head removed (the ImageNet weights include
    the auxiliary head, so it is built with one and dropped after loading)."""

    torchvision_name = "inception_v3"
    input_size = 299
    n_features = 2048
    model_options = {"aux_logits": True, "init_weights": False}

    def remove_classifier(self, model: Any) -> Any:
        import torch

        model.aux_logits, model.AuxLogits = False, None
        model.fc = torch.nn.Identity()
        return model
