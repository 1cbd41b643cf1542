"""Network architectures: one module per architecture, behind :class:`Architecture` (segmentation)
or :class:`ClassifierArchitecture` (classification; :class:`TransferArchitecture` for ImageNet backbones).

A deep rung names its architecture as ``"module:Class"`` in the rung registry
(:mod:`automed.rungs`), so adding one is a module here plus a registry entry.
Modules import torch, MONAI and torchvision only inside their builders.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from automed._dotted import load_attribute
from automed.nets.base import Architecture, ClassifierArchitecture, TransferArchitecture, count_parameters

__all__ = ["Architecture", "ClassifierArchitecture", "TransferArchitecture", "architecture", "build_classifier",
           "build_network", "count_parameters"]


@lru_cache(maxsize=None)
def architecture(path: str) -> Any:
    """The architecture at ``"module:Class"`` (an instance; they hold no state)."""
    return load_attribute(path)()


def build_network(config: Any, in_channels: int, out_channels: int) -> Any:
    """The untrained network of a :class:`~automed.deep.training.NetConfig`."""
    return architecture(config.architecture).build(config.spatial_dims, in_channels, out_channels, config.width,
                                                   dict(config.hp))


def build_classifier(config: Any, in_channels: int, n_classes: int) -> Any:
    """The untrained network of a :class:`~automed.deep.classification.ClassifierConfig`."""
    return architecture(config.architecture).build(config.spatial_dims, in_channels, n_classes, dict(config.hp))
