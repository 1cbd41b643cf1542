"""A training case of the classical rung while it fits: its voxel samples, working-grid label and
region of interest (kept on disk, memory-mapped, when the run has a cache), and optionally its
whole feature matrix on the rung's grid."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from automed.data.case import Case
from automed.data.io import Geometry
from automed.data.loading import load_case
from automed.data.normalize import map_labels, normalize
from automed.data.spill import spill
from automed.rungs.base import FitContext
from automed.rungs.segmentation.classical_grid import to_coarse

__all__ = ["CaseData", "inside", "prepare_case", "spilled"]


@dataclass(frozen=True)
class CaseData:
    """One training case during fitting: its samples (and their flat indices on the rung's grid),
    label, geometry and region of interest (or None) on the working grid, its shape on the rung's
    grid, and (optionally) all its features there with the seconds they took to compute."""

    X: np.ndarray
    y: np.ndarray
    label: np.ndarray
    geometry: Geometry
    rows: np.ndarray | None
    feature_seconds: float
    grid_shape: tuple[int, ...]
    roi: np.ndarray | None = None
    index: np.ndarray | None = None


def prepare_case(rung: Any, case: Case, fingerprint: Any, channels_in_one_file: bool,
                 seed: int, keep_rows: bool) -> CaseData:
    """Balanced voxel samples of one case, and its whole feature matrix if ``keep_rows`` (worker process)."""
    from automed.models.classical import sample_voxels

    loaded = load_case(case, fingerprint.n_channels, channels_in_one_file, fingerprint.target_spacing)
    label = map_labels(loaded.label, fingerprint.label_mapping)
    image, coarse_label, coarse_roi = to_coarse(normalize(loaded.image, fingerprint), label, loaded.roi,
                                                rung.grid_factors_)
    p = rung.params
    index = sample_voxels(coarse_label, p.samples_per_case(fingerprint.n_cases), p.background_ratio, p.boundary_fraction,
                          np.random.default_rng(seed), roi=coarse_roi)
    per_row = int(np.prod(coarse_label.shape[1:]))
    samples, slabs, start_of = [], [], index // per_row
    started = time.monotonic()
    for start, stop, feats in rung.features_.slabs(image, p.slab_voxels, workers=1):
        in_slab = index[(start_of >= start) & (start_of < stop)]
        samples.append(feats[in_slab - start * per_row])
        if keep_rows:
            slabs.append(feats)
    rows = np.concatenate(slabs) if keep_rows else None
    return CaseData(np.concatenate(samples), coarse_label.ravel()[index], label, loaded.geometry, rows,
                    time.monotonic() - started, coarse_label.shape, loaded.roi, index)


def spilled(data: CaseData, context: FitContext, case_id: str) -> CaseData:
    """``data`` with its working-grid label and ROI on disk (80 MB each for a CT case), memory-mapped."""
    def out(name: str) -> np.ndarray | None:
        array = getattr(data, name)
        return None if array is None else spill(array, context.scratch_path("classical", case_id, name))

    return replace(data, label=out("label"), roi=out("roi"))


def inside(pred: np.ndarray, roi: np.ndarray | None) -> np.ndarray:
    """``pred`` with background outside the region of interest (nothing is segmented there)."""
    return pred if roi is None else np.where(roi, pred, 0).astype(pred.dtype)
