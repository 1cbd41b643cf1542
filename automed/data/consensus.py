"""One label from several raters' masks: STAPLE, a majority vote, or one rater's (SimpleITK's filters)."""

from __future__ import annotations

import numpy as np

from automed.errors import RecipeError

__all__ = ["CONSENSUS_METHODS", "check_consensus", "consensus_label"]

CONSENSUS_METHODS = ("staple", "majority")
"""The consensus rules besides ``rater:NAME``."""


def check_consensus(value: object) -> None:
    """Raise a :class:`RecipeError` unless ``value`` is ``"staple"``, ``"majority"`` or ``"rater:NAME"``."""
    if not isinstance(value, str) or not (value in CONSENSUS_METHODS or (value.startswith("rater:") and value[6:])):
        raise RecipeError(f"The 'consensus' parameter of Recipe must be 'staple', 'majority' or 'rater:NAME'. "
                          f"Got {value!r} instead.")


def consensus_label(masks: dict[str, np.ndarray], method: str) -> np.ndarray:
    """The consensus of the raters' integer masks (name -> array, one shape).

    ``staple``: SimpleITK's STAPLE for one foreground value (its probability above 0.5), its multi-label STAPLE
    for several; ``majority``: the value most raters give (ties: background); ``rater:NAME``: that rater's mask.
    """
    import SimpleITK as sitk

    if method.startswith("rater:"):
        return masks[method[len("rater:"):]]
    arrays = list(masks.values())
    values = sorted(set(np.unique(np.stack(arrays)).tolist()) - {0})
    images = [sitk.GetImageFromArray(a.astype(np.uint16)) for a in arrays]
    if not values:
        return np.zeros_like(arrays[0])
    if method == "majority":
        undecided = max(values) + 1
        voted = sitk.GetArrayFromImage(sitk.LabelVoting(images, undecided)).astype(np.int64)
        return np.where(voted == undecided, 0, voted)
    if len(values) == 1:
        binary = [sitk.GetImageFromArray((a == values[0]).astype(np.uint8)) for a in arrays]
        probability = sitk.GetArrayFromImage(sitk.STAPLE(binary, 1.0))
        return np.where(probability > 0.5, values[0], 0).astype(np.int64)
    undecided = max(values) + 1
    labelled = sitk.GetArrayFromImage(sitk.MultiLabelSTAPLE(images, undecided)).astype(np.int64)
    return np.where(labelled == undecided, 0, labelled)
