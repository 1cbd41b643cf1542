"""How well a displacement field registers one pair: warped-label Dice and HD95 per structure (Learn2Reg's
accuracy), folding and the smoothness of the Jacobian, image similarity, and the seconds it took."""

from __future__ import annotations

from typing import Any

import numpy as np

from automed.registration.fields import folding_fraction, jacobian_determinant, sd_log_jacobian, warp

__all__ = ["ncc", "score_pair"]


def ncc(a: np.ndarray, b: np.ndarray, region: np.ndarray) -> float:
    """Normalised cross-correlation of two images ``(channels, *grid)`` over ``region``, averaged over channels."""
    values = []
    for x, y in zip(a, b):
        x, y = x[region] - x[region].mean(), y[region] - y[region].mean()
        values.append(float((x * y).sum() / max(np.sqrt((x * x).sum() * (y * y).sum()), 1e-12)))
    return float(np.mean(values))


def score_pair(case_id: str, displacement: np.ndarray, fixed: Any, moving: Any, labels: list[int],
               spacing: tuple[float, ...], seconds: float) -> dict[str, Any]:
    """The per-case record of one registered pair (:class:`~automed.data.registration.GridVolume` ``fixed``
    and ``moving``): ``scores`` per structure (``{"dice", "hd95"}``, as segmentation records them, and
    ``dice_before``: the labels' overlap without registration), ``folding``, ``sd_log_jacobian``, ``ncc`` and
    ``ncc_before`` over the fixed volume's voxels, and ``seconds``."""
    from automed.metrics import segmentation_scores

    region = fixed.region
    determinant = jacobian_determinant(displacement)
    record: dict[str, Any] = {
        "case_id": case_id, "fold": 0, "seconds": seconds, "folding": folding_fraction(determinant, region),
        "sd_log_jacobian": sd_log_jacobian(determinant, region),
        "ncc": ncc(warp(moving.image, displacement), fixed.image, region),
        "ncc_before": ncc(moving.image, fixed.image, region)}
    if labels and fixed.label is not None and moving.label is not None:
        n_classes = max(labels) + 1
        warped = warp(moving.label, displacement, order=0)
        crop = fixed.placement.region()
        after = segmentation_scores(warped[crop], fixed.label[crop], n_classes, spacing)
        before = segmentation_scores(moving.label[crop], fixed.label[crop], n_classes, spacing)
        record["scores"] = {str(c): {**after[c], "dice_before": before[c]["dice"]} for c in labels}
    return record
