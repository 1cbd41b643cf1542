"""What every segmentation architecture provides: its searched hyperparameters, its default,
the input-size divisor, and a builder."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

__all__ = ["Architecture", "count_parameters"]


class Architecture(ABC):
    """A network family; ``width`` (first-level channels) is common to all, the rest is its own ``hp``.

    ``params`` below are the rung's :class:`~automed.rungs.deep_params.DeepParams` (``depths`` is the
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


def count_parameters(model: Any) -> int:
    """Number of parameters of a torch module."""
    return int(sum(p.numel() for p in model.parameters()))
