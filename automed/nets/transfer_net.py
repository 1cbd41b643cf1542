"""A torchvision ImageNet backbone (VGG16, Inception-v3) with a new head, for medical images.

Images are resized to what the backbone expects. Colour photographs keep their R, G and B as
the backbone's three channels; grey images are repeated to three; any other channel count
is mapped to three by a learned 1 x 1 convolution that starts as the channels' mean.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from automed.errors import DataError

if TYPE_CHECKING:
    from automed.nets.base import TransferArchitecture

__all__ = ["TransferNet", "transfer_net"]


def transfer_net(arch: TransferArchitecture, state: dict[str, Any] | None, source: str, n_classes: int,
                 in_channels: int) -> TransferNet:
    """The torchvision model of ``arch`` with ``state`` loaded (strictly; ``None``: random weights),
    its ImageNet classifier removed and a new linear head for ``n_classes``.

    Raises
    ------
    DataError
        ``state`` (read from ``source``) does not hold this model's weights.
    """
    from torchvision.models import get_model

    model = get_model(arch.torchvision_name, weights=None, **arch.model_options)
    try:
        if state is not None:
            model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else str(exc)
        raise DataError(f"{source}: does not hold {arch.torchvision_name} weights ({first[:200]}).") from exc
    return TransferNet(arch.remove_classifier(model), arch.input_size, arch.n_features, n_classes, in_channels)


class TransferNet(torch.nn.Module):
    """Resize to the backbone's input size, channels to 3 (see the module), backbone, new linear head."""

    def __init__(self, backbone: Any, input_size: int, n_features: int, n_classes: int, in_channels: int) -> None:
        super().__init__()
        self.backbone, self.size, self.in_channels = backbone, input_size, in_channels
        self.head = torch.nn.Linear(n_features, n_classes)
        self.to_rgb = None
        if in_channels not in (1, 3):
            self.to_rgb = torch.nn.Conv2d(in_channels, 3, kernel_size=1)
            torch.nn.init.constant_(self.to_rgb.weight, 1.0 / in_channels)
            torch.nn.init.zeros_(self.to_rgb.bias)

    def features(self, x: Any) -> Any:
        x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        if self.in_channels == 1:
            x = x.expand(-1, 3, -1, -1)
        elif self.to_rgb is not None:
            x = self.to_rgb(x)
        return self.backbone(x)

    def forward(self, x: Any) -> Any:
        return self.head(self.features(x))

    def param_groups(self, lr: float, backbone_factor: float) -> list[dict[str, Any]]:
        """The backbone at ``lr * backbone_factor`` (frozen when 0), the head (and channel map) at ``lr``."""
        new = list(self.head.parameters()) + (list(self.to_rgb.parameters()) if self.to_rgb is not None else [])
        if backbone_factor == 0:
            self.backbone.requires_grad_(False)
            return [{"params": new, "lr": lr}]
        return [{"params": list(self.backbone.parameters()), "lr": lr * backbone_factor}, {"params": new, "lr": lr}]
