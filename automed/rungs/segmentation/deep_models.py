"""The saved networks of a deep segmentation rung: their file names and how one is loaded.

A fitted rung keeps ``model.json`` (configuration, post-processing, the keys of its final
trainings) and one ``model_<key>.pt`` state dict per final training: ``fold0``, then
``fold0_1``, ``fold0_2``... when a fold has several members
(:meth:`~automed.rungs.segmentation.deep.DeepSegmentationRung.load` reads them).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["NetworkShape", "load_model", "plain_config", "training_key"]


@dataclass(frozen=True)
class NetworkShape:
    """What :func:`load_model` needs of a fingerprint."""

    n_channels: int
    n_classes: int


def load_model(config: Any, fingerprint: Any, path: Path, device: Any) -> Any:
    """The network of ``config`` with the weights saved at ``path`` (``weights_only``), in evaluation mode."""
    import torch

    from automed.nets import build_network

    model = build_network(config, fingerprint.n_channels, fingerprint.n_classes).to(device)
    model.load_state_dict(torch.load(path, map_location=device, weights_only=True)["model"])
    return model.eval()


def training_key(fold: int, member: int) -> str:
    """The name of a final training's folder and weights: ``fold0``, then ``fold0_1``, ``fold0_2``... for more members."""
    return f"fold{fold}" if member == 0 else f"fold{fold}_{member}"


def plain_config(obj: Any) -> dict[str, Any]:
    """A configuration dataclass as a JSON-ready dict (tuples as lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(obj).items()}
