"""Morphological post-processing of label maps, chosen by cross-validation.

Each step acts on one foreground class (or on all foreground classes together) and is
kept only if it raises the mean Dice of the out-of-fold predictions, as nnU-Net does for
its "keep the largest component" step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["OPERATIONS", "apply_postprocessing", "choose_postprocessing"]

OPERATIONS = ("largest_component", "fill_holes", "remove_small", "opening")
FOREGROUND = "foreground"


def _largest_component(mask: np.ndarray) -> np.ndarray:
    from skimage.measure import label

    components = label(mask, connectivity=mask.ndim)
    if components.max() <= 1:
        return mask
    sizes = np.bincount(components.ravel())
    sizes[0] = 0
    return components == sizes.argmax()


def _apply_step(mask: np.ndarray, step: dict[str, Any]) -> np.ndarray:
    from scipy import ndimage
    from skimage import morphology

    op = step["op"]
    if op == "largest_component":
        return _largest_component(mask)
    if op == "fill_holes":
        return ndimage.binary_fill_holes(mask)
    if op == "remove_small":
        return morphology.remove_small_objects(mask, max_size=step["min_size"] - 1, connectivity=mask.ndim)
    if op == "opening":
        return ndimage.binary_opening(mask, structure=ndimage.generate_binary_structure(mask.ndim, 1))
    raise ValueError(f"unknown post-processing operation {op!r}")


def apply_postprocessing(pred: np.ndarray, steps: Sequence[dict[str, Any]]) -> np.ndarray:
    """Apply the chosen steps in order to a class-index map.

    Voxels a step removes become background; voxels it adds (filled holes) are taken
    only from background, never from another class.
    """
    pred = pred.copy()
    for step in steps:
        target = step["class"]
        mask = pred > 0 if target == FOREGROUND else pred == target
        new = _apply_step(mask, step)
        pred[mask & ~new] = 0
        if target != FOREGROUND:
            pred[new & ~mask & (pred == 0)] = target
    return pred


def _min_component_size(truths: Sequence[np.ndarray], cls: int) -> int:
    """Half the 5th percentile of true component sizes of ``cls``: smaller blobs are noise."""
    from skimage.measure import label

    sizes = []
    for truth in truths:
        components = label(truth == cls, connectivity=truth.ndim)
        sizes.extend(np.bincount(components.ravel())[1:].tolist())
    return max(2, int(0.5 * np.percentile(sizes, 5))) if sizes else 2


def choose_postprocessing(preds: Sequence[np.ndarray], truths: Sequence[np.ndarray], n_classes: int,
                          min_gain: float = 1e-4, first_class: int = 1) -> tuple[list[dict[str, Any]], float, float]:
    """Greedy cross-validated choice of post-processing steps.

    Parameters
    ----------
    preds, truths : sequences of ndarray
        Out-of-fold predictions and ground truth, case by case.
    n_classes : int
        Including background.
    min_gain : float
        A step is kept only if it raises the mean Dice by more than this.
    first_class : int
        Dice is averaged over classes ``first_class`` and up (0: background included).

    Returns
    -------
    steps : list of dict
        Chosen steps, e.g. ``[{"class": 1, "op": "largest_component"}]``.
    dice_before, dice_after : float
        Mean Dice over cases before and after the chosen steps.
    """
    from automed.metrics import counted_dice_per_class

    def score(candidates: list[np.ndarray]) -> float:
        return float(np.mean([counted_dice_per_class(p, t, n_classes)[first_class:].mean()
                              for p, t in zip(candidates, truths)]))

    candidates: list[dict[str, Any]] = []
    if n_classes > 2:
        candidates.append({"class": FOREGROUND, "op": "largest_component"})
    for cls in range(1, n_classes):
        for op in OPERATIONS:
            step: dict[str, Any] = {"class": cls, "op": op}
            if op == "remove_small":
                step["min_size"] = _min_component_size(truths, cls)
            candidates.append(step)

    current = list(preds)
    before = best = score(current)
    chosen: list[dict[str, Any]] = []
    for step in candidates:
        trial = [apply_postprocessing(p, [step]) for p in current]
        value = score(trial)
        if value > best + min_gain:
            chosen.append(step)
            current, best = trial, value
    return chosen, before, best
