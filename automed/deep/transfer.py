"""ImageNet weights for the torchvision backbones of :mod:`automed.nets.transfer_net`, and 3D volumes
as 2.5D images (their three orthogonal central slices as the three channels)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from automed.errors import DataError
from automed.nets.base import TransferArchitecture

__all__ = ["WeightsUnavailable", "orthogonal_slices", "pretrained_state_dict"]


class WeightsUnavailable(Exception):
    """ImageNet weights could not be obtained (no internet and nothing in the torch hub cache)."""


def pretrained_state_dict(arch: TransferArchitecture, weights: str) -> dict[str, Any]:
    """The state dict of the torchvision model of ``arch``: ``"imagenet"`` through torchvision's weights API (downloaded
    into the torch hub cache on first use), or a file holding a saved state dict.

    Raises
    ------
    WeightsUnavailable
        ``"imagenet"`` was asked for and could not be downloaded or found in the cache.
    DataError
        The file is missing, unreadable or not a state dict.
    """
    from torchvision.models import get_model_weights

    if weights == "imagenet":
        try:
            return get_model_weights(arch.torchvision_name).IMAGENET1K_V1.get_state_dict(progress=False)
        except Exception as exc:  # URLError, HTTPError, hash mismatch: all mean "not available here"
            raise WeightsUnavailable(f"ImageNet weights for {arch.torchvision_name} could not be obtained ({type(exc).__name__}: "
                                     f"{exc}); pass --pretrained-weights FILE") from exc
    path = Path(weights)
    if not path.is_file():
        raise DataError(f"{path}: pretrained weights file not found.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DataError(f"{path}: not a readable torch state dict ({type(exc).__name__}: {exc}).") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not state or not all(torch.is_tensor(v) for v in state.values()):
        raise DataError(f"{path}: not a state dict (a mapping of parameter names to tensors).")
    return state


def orthogonal_slices(volumes: np.ndarray) -> np.ndarray:
    """``(N, 1, D, H, W)`` volumes to ``(N, 3, S, S)`` images of their central slices (S: largest side)."""
    x = torch.from_numpy(volumes[:, 0])
    d, h, w = x.shape[1:]
    side = max(d, h, w)
    planes = [x[:, d // 2], x[:, :, h // 2], x[:, :, :, w // 2]]
    resized = [F.interpolate(p[:, None], size=(side, side), mode="bilinear", align_corners=False) for p in planes]
    return torch.cat(resized, dim=1).numpy()
