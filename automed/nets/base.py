"""What every architecture provides: its searched hyperparameters, its default and a builder;
segmentation networks also an input-size divisor, ImageNet backbones their torchvision identity."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

__all__ = ["Architecture", "ClassifierArchitecture", "TransferArchitecture", "count_parameters"]


class Architecture(ABC):
    """A segmentation network family; ``width`` (first-level channels) is common to all, the rest is its own ``hp``.

    ``params`` below are the rung's :class:`~automed.rungs.segmentation.deep_params.DeepParams` (``depths`` is the
    searched number of resolution levels for the architectures that have a choice).
    """

    def search_space(self, trial: Any, params: Any) -> dict[str, Any]:
        """The architecture's own hyperparameters suggested by an Optuna ``trial`` (none by default)."""
        return {}

    def default(self, params: Any) -> dict[str, Any]:
        """The hyperparameters of the first trial, and of a training without search."""
        return {}

    def largest(self, params: Any) -> dict[str, Any]:
        """The searchable hyperparameters that need the most memory (checked against the limit)."""
        return self.default(params)

    @abstractmethod
    def size_divisor(self, hp: dict[str, Any]) -> int:
        """Input sizes must be multiples of this (one halving per level below the top)."""

    def training_loss(self, loss: Any) -> Any:
        """The training loss, given ``loss`` for one output; networks with deep supervision, whose
        training-mode output holds several heads, combine them here. Evaluation sees one output."""
        return loss

    @abstractmethod
    def build(self, spatial_dims: int, in_channels: int, out_channels: int, width: int, hp: dict[str, Any]) -> Any:
        """The ``torch.nn.Module`` (logits, one channel per class)."""


class ClassifierArchitecture(ABC):
    """An image classification network family; its hyperparameters ``hp`` are its own.

    ``params`` below are the rung's :class:`~automed.rungs.classification.deep_params.DeepClassifierParams`.
    """

    def search_space(self, trial: Any, params: Any) -> dict[str, Any]:
        """The architecture's own hyperparameters suggested by an Optuna ``trial`` (none by default)."""
        return {}

    def default(self, params: Any) -> dict[str, Any]:
        """The hyperparameters of the first trial, and of a training without search."""
        return {}

    @abstractmethod
    def build(self, spatial_dims: int, in_channels: int, n_classes: int, hp: dict[str, Any]) -> Any:
        """The ``torch.nn.Module`` (logits, one per class) with its initial weights."""


class TransferArchitecture(ClassifierArchitecture):
    """A torchvision ImageNet backbone whose classifier is replaced by a new linear head.

    Subclasses name the torchvision model, its input size and the width of the features
    that feed the head, and remove the ImageNet classifier.
    """

    torchvision_name: ClassVar[str]
    input_size: ClassVar[int]
    n_features: ClassVar[int]
    #: Keyword arguments of ``torchvision.models.get_model`` that the ImageNet weights need.
    model_options: ClassVar[dict[str, Any]] = {}

    @abstractmethod
    def remove_classifier(self, model: Any) -> Any:
        """``model`` with its ImageNet classifier (and any auxiliary head) replaced by identity."""

    def build(self, spatial_dims: int, in_channels: int, n_classes: int, hp: dict[str, Any]) -> Any:
        """The backbone with random weights (a pretrained one comes from :func:`automed.nets.transfer_net.transfer_net`)."""
        from automed.nets.transfer_net import transfer_net

        return transfer_net(self, None, "random initialisation", n_classes, in_channels)


def count_parameters(model: Any) -> int:
    """Number of parameters of a torch module."""
    return int(sum(p.numel() for p in model.parameters()))
