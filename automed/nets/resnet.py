"""MONAI's ResNet for small images: basic blocks, a stride-1 stem and no max pooling."""

from __future__ import annotations

from typing import Any

from automed.nets.base import ClassifierArchitecture

__all__ = ["ResNet"]


class ResNet(ClassifierArchitecture):
    """``monai.networks.nets.ResNet`` with ``depth`` basic blocks per stage and ``width`` first-stage
    channels, doubling over four stages; the 3x3 stride-1 stem suits MedMNIST's 28 or 64 pixels."""

    def search_space(self, trial: Any, params: Any) -> dict[str, Any]:
        return {"width": trial.suggest_categorical("width", list(params.widths)),
                "depth": trial.suggest_categorical("depth", list(params.depths))}

    def default(self, params: Any) -> dict[str, Any]:
        return {"width": params.widths[0], "depth": params.depths[0]}

    def build(self, spatial_dims: int, in_channels: int, n_classes: int, hp: dict[str, Any]) -> Any:
        from monai.networks.nets import ResNet as MonaiResNet

        w = hp["width"]
        return MonaiResNet("basic", [hp["depth"]] * 4, [w, 2 * w, 4 * w, 8 * w], spatial_dims=spatial_dims,
                           n_input_channels=in_channels, conv1_t_size=3, conv1_t_stride=1, no_max_pool=True,
                           num_classes=n_classes)
