"""Scoring a deep segmentation rung (or an ensemble of them) on its comparison cases."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from automed.rungs.base import FitContext

__all__ = ["evaluate_cases"]


def evaluate_cases(context: FitContext, evaluations: list, volumes: dict[str, Any],
                   predict: Callable[[int, np.ndarray], np.ndarray]) -> tuple[list[dict], float]:
    """Score ``predict(fold, image)`` (a class map) on the comparison cases of ``evaluations``.

    The masks go to ``oof/`` in the label's format. Returns the per-case records of
    :class:`RungOutcome` and the mean prediction seconds per case.
    """
    from automed.data.io import mask_suffix, write_image
    from automed.data.normalize import unmap_labels
    from automed.metrics import segmentation_scores

    fp = context.fingerprint
    cases = {c.case_id: c for c in context.dataset.cases}
    out = context.folder / "oof"
    out.mkdir(parents=True, exist_ok=True)
    per_case, seconds = [], []
    for k, _, val_ids in evaluations:
        for case_id in val_ids:
            volume = volumes[case_id]
            started = time.monotonic()
            pred = predict(k, volume.image)
            if volume.roi is not None:  # nothing is segmented outside the region of interest
                pred = np.where(volume.roi, pred, 0).astype(pred.dtype)
            seconds.append(time.monotonic() - started)
            scores = segmentation_scores(pred, volume.label, fp.n_classes, volume.spacing)
            per_case.append({"case_id": case_id, "fold": k, "scores": {str(c): s for c, s in scores.items()}})
            label_path = cases[case_id].label_source
            suffix = mask_suffix(label_path)
            write_image(unmap_labels(pred, fp.label_mapping), volume.geometry, out / f"{case_id}{suffix}")
    return per_case, float(np.mean(seconds))
