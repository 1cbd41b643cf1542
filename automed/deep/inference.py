"""Whole-image prediction: sliding windows (MONAI) over volumes, images or stacks of slices."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

__all__ = ["predict_proba", "pick_device"]


#: Inputs with more voxels (per channel and image) than this are stitched in host memory.
STITCH_ON_HOST_VOXELS = 2**24


def pick_device() -> Any:
    """CUDA when present, else CPU."""
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def predict_proba(model: Any, image: np.ndarray, patch: tuple[int, ...], axis: int | None, device: Any,
                  tta: bool = False, slices_per_batch: int = 32, bfloat16: bool = False) -> np.ndarray:
    """Softmax probabilities ``(n_classes, *spatial)`` of a normalised image ``(C, *spatial)``.

    Parameters
    ----------
    patch : tuple of int
        The network's training patch, used as the sliding-window size (50% overlap,
        Gaussian weighting).
    axis : int or None
        Spatial axis to slice along for a 2D network on a 3D image.
    tta : bool
        Average over mirrored inputs along every axis the network sees (test-time
        augmentation, as nnU-Net does).
    bfloat16 : bool
        On a CPU, run the network under bfloat16 autocast (on CUDA, float16 AMP is always used).
    """
    import torch

    model.eval()
    # a memory-mapped training case is read-only, and torch wants a writable array to wrap
    x = torch.from_numpy(np.ascontiguousarray(image) if image.flags.writeable else np.array(image)).float()
    if axis is None:
        return _predict_batch(model, x[None], patch, device, tta, bfloat16)[0]
    stack = x.movedim(axis + 1, 0)  # (S, C, *plane)
    out = [_predict_batch(model, stack[i:i + slices_per_batch], patch, device, tta, bfloat16)
           for i in range(0, stack.shape[0], slices_per_batch)]
    return np.moveaxis(np.concatenate(out), 0, axis + 1)


def _predict_batch(model: Any, x: Any, patch: tuple[int, ...], device: Any, tta: bool, bfloat16: bool) -> np.ndarray:
    import torch
    from monai.inferers import sliding_window_inference

    from automed.deep.loop import autocast

    spatial = list(range(2, x.ndim))
    flips = [()] + [c for r in range(1, len(spatial) + 1) for c in itertools.combinations(spatial, r)] if tta else [()]
    # A CT-sized volume is stitched in host memory, only its windows visit the GPU (MONAI's sw_device):
    # its full-size logits alone would take gigabytes of VRAM.
    stitch = torch.device("cpu") if x[0].numel() > STITCH_ON_HOST_VOXELS else device
    x = x.to(stitch)
    total = None
    with torch.no_grad(), autocast(device, True, bfloat16):
        for dims in flips:
            xi = torch.flip(x, dims) if dims else x
            logits = sliding_window_inference(xi, patch, sw_batch_size=4, predictor=model, overlap=0.5,
                                              mode="gaussian", sw_device=device, device=stitch)
            del xi  # on a CT every full-size array is gigabytes: each is freed as soon as it is used
            proba = torch.softmax(logits.float(), dim=1)
            del logits
            proba = torch.flip(proba, dims) if dims else proba
            total = proba if total is None else total.add_(proba)
            del proba
    return total.div_(len(flips)).cpu().numpy()
