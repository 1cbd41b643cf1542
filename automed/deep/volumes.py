"""Training cases held in memory as normalised arrays, and the samples networks train on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from automed.data.io import Geometry
from automed.data.loading import load_case
from automed.data.normalize import map_labels, normalize

__all__ = ["Volume", "load_volumes", "slice_axis", "SampleSource"]


@dataclass(frozen=True)
class Volume:
    """One normalised case: ``image`` ``(C, *spatial)`` float32, ``label`` ``spatial`` uint8 and,
    when the case has one, its region of interest ``roi`` (bool, ``spatial``)."""

    case_id: str
    image: np.ndarray
    label: np.ndarray
    geometry: Geometry
    spacing: tuple[float, ...]
    roi: np.ndarray | None = None


def load_volumes(dataset: Any, fingerprint: Any, case_ids: list[str]) -> dict[str, Volume]:
    """Load, normalise and map the labels of ``case_ids``."""
    cases = {c.case_id: c for c in dataset.cases}
    spacing = {r["case_id"]: tuple(r["spacing"]) for r in fingerprint.cases}
    volumes = {}
    for case_id in case_ids:
        loaded = load_case(cases[case_id], fingerprint.n_channels, dataset.channels_in_one_file,
                           fingerprint.target_spacing)
        volumes[case_id] = Volume(case_id, normalize(loaded.image, fingerprint).astype(np.float32),
                                  map_labels(loaded.label, fingerprint.label_mapping).astype(np.uint8),
                                  loaded.geometry, spacing[case_id], loaded.roi)
    return volumes


def slice_axis(fingerprint: Any) -> int:
    """Spatial axis a 2D network slices 3D volumes along.

    The axis with the coarsest spacing (the through-plane axis of anisotropic scans);
    with isotropic spacing, the axis with the fewest voxels, so slices are largest.
    """
    spacing = np.asarray(fingerprint.median_spacing, dtype=float)
    shape = np.asarray(fingerprint.median_shape, dtype=float)
    coarsest = spacing >= spacing.max() * 0.999
    return int(np.flatnonzero(coarsest)[np.argmin(shape[coarsest])])


class SampleSource:
    """The items a network trains on: whole volumes (3D) or slices (2D).

    Parameters
    ----------
    volumes : dict of Volume
    axis : int or None
        Slice 3D volumes along this spatial axis for a 2D network; ``None`` trains on
        whole images (2D data with a 2D network, 3D data with a 3D network).
    """

    def __init__(self, volumes: dict[str, Volume], axis: int | None) -> None:
        self.volumes, self.axis = volumes, axis
        self.items: list[tuple[str, int | None]] = []
        foreground = []
        for case_id, volume in volumes.items():
            if axis is None:
                self.items.append((case_id, None))
                foreground.append(bool(volume.label.any()))
                continue
            other = tuple(a for a in range(volume.label.ndim) if a != axis)
            has_fg = volume.label.any(axis=other)
            for index in range(volume.label.shape[axis]):
                self.items.append((case_id, index))
                foreground.append(bool(has_fg[index]))
        self.foreground = np.flatnonzero(foreground)

    def __len__(self) -> int:
        return len(self.items)

    def get(self, item: int) -> dict[str, np.ndarray]:
        """``{"image": (C, *spatial), "label": (1, *spatial)}`` of one item."""
        case_id, index = self.items[item]
        volume = self.volumes[case_id]
        if index is None:
            return {"image": volume.image, "label": volume.label[None]}
        return {"image": np.take(volume.image, index, axis=self.axis + 1),
                "label": np.take(volume.label, index, axis=self.axis)[None]}

    def draw(self, rng: np.random.Generator, foreground_share: float) -> int:
        """A random item; with probability ``foreground_share`` one containing foreground."""
        if len(self.foreground) and rng.random() < foreground_share:
            return int(rng.choice(self.foreground))
        return int(rng.integers(len(self.items)))
