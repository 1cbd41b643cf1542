"""Training cases as normalised arrays, memory-mapped from the run's cache, and the samples
networks train on.

A CT-sized case is 80 M voxels, 320 MB a channel in float32: a dataset of fifty cannot be held
in memory. Each case is normalised once, written to the run's cache as ``.npy`` files and read
back memory-mapped (as nnU-Net's preprocessed data is); training reads only the patch windows
it samples, so the memory a fit holds is a few patches and one validation case, not the dataset.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from automed.data.atomic import folder_written_atomically, write_text
from automed.data.io import Geometry
from automed.data.loading import load_case
from automed.data.normalize import map_labels, normalize
from automed.data.spill import spill_name

__all__ = ["Volume", "load_volumes", "slice_axis", "SampleSource", "FOREGROUND_LOCATIONS"]

#: Foreground voxels remembered per case to centre patches on (nnU-Net keeps 10,000 per class).
FOREGROUND_LOCATIONS = 10_000
_DONE = "volume.json"


@dataclass(frozen=True)
class Volume:
    """One normalised case on the working grid.

    Attributes
    ----------
    image : ndarray
        ``(C, *spatial)`` float32 (memory-mapped when loaded from a cache).
    label : ndarray
        ``spatial`` uint8 classes.
    geometry : Geometry
        Where the working-grid case lies in space (for writing its predicted masks).
    spacing : tuple of float
        Working-grid spacing, array-axis order.
    roi : ndarray or None
        The case's region of interest (bool, ``spatial``), when it has one.
    foreground : ndarray
        ``(k, ndim)`` coordinates of up to :data:`FOREGROUND_LOCATIONS` foreground voxels
        drawn at random (seeded by the case id); empty when the case has none.
    """

    case_id: str
    image: np.ndarray
    label: np.ndarray
    geometry: Geometry
    spacing: tuple[float, ...]
    roi: np.ndarray | None = None
    foreground: np.ndarray | None = None


def load_volumes(dataset: Any, fingerprint: Any, case_ids: list[str], cache: Path | None = None) -> dict[str, Volume]:
    """Load, normalise and map the labels of ``case_ids``.

    With ``cache`` (a folder), each case is prepared once, written there and returned
    memory-mapped; a case already in the cache is only opened. Without it the arrays are
    held in memory.
    """
    cases = {c.case_id: c for c in dataset.cases}
    spacing = {r["case_id"]: tuple(r["spacing"]) for r in fingerprint.cases}
    volumes = {}
    for case_id in case_ids:
        folder = None if cache is None else cache / spill_name(case_id)
        if folder is not None and (folder / _DONE).is_file():
            volumes[case_id] = _open(folder, case_id, spacing[case_id])
            continue
        loaded = load_case(cases[case_id], fingerprint.n_channels, dataset.channels_in_one_file,
                           fingerprint.target_spacing)
        label = map_labels(loaded.label, fingerprint.label_mapping).astype(np.uint8)
        volume = Volume(case_id, normalize(loaded.image, fingerprint).astype(np.float32), label, loaded.geometry,
                        spacing[case_id], loaded.roi, _foreground_sample(label, case_id))
        if folder is not None:
            _store(volume, folder)
            volume = _open(folder, case_id, spacing[case_id])
        volumes[case_id] = volume
    return volumes


def _foreground_sample(label: np.ndarray, case_id: str) -> np.ndarray:
    coords = np.argwhere(label > 0)
    if len(coords) > FOREGROUND_LOCATIONS:
        seed = int(hashlib.sha1(case_id.encode()).hexdigest()[:8], 16)
        coords = coords[np.sort(np.random.default_rng(seed).choice(len(coords), FOREGROUND_LOCATIONS, replace=False))]
    return coords.astype(np.int32)


def _store(volume: Volume, folder: Path) -> None:
    """Write ``volume`` into ``folder`` atomically (a half-written case is never opened)."""
    with folder_written_atomically(folder) as partial:
        for name in ("image", "label", "roi", "foreground"):
            array = getattr(volume, name)
            if array is not None:
                np.save(partial / f"{name}.npy", array)
        write_text(partial / _DONE, json.dumps({"case_id": volume.case_id, "geometry": asdict(volume.geometry)}))


def _open(folder: Path, case_id: str, spacing: tuple[float, ...]) -> Volume:
    geometry = Geometry(**{k: tuple(v) for k, v in json.loads((folder / _DONE).read_text())["geometry"].items()})

    def read(name: str) -> np.ndarray | None:
        path = folder / f"{name}.npy"
        return np.load(path, mmap_mode="r") if path.is_file() else None

    return Volume(case_id, read("image"), read("label"), geometry, spacing, read("roi"), read("foreground"))


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
                foreground.append(bool(volume.label.any()) if volume.foreground is None else len(volume.foreground) > 0)
                continue
            other = tuple(a for a in range(volume.label.ndim) if a != axis)
            has_fg = np.asarray(volume.label).any(axis=other)
            for index in range(volume.label.shape[axis]):
                self.items.append((case_id, index))
                foreground.append(bool(has_fg[index]))
        self.foreground = np.flatnonzero(foreground)

    def __len__(self) -> int:
        return len(self.items)

    def get(self, item: int, window: tuple[int, ...] | None = None,
            rng: np.random.Generator | None = None) -> dict[str, np.ndarray]:
        """``{"image": (C, *spatial), "label": (1, *spatial)}`` of one item, as in-memory arrays.

        With ``window`` (a patch size) and ``rng``, an item larger than ``window`` is read only
        within one window of that size: centred on a remembered foreground voxel half the time
        (MONAI's positive/negative 1:1 rule), else on a random voxel, and moved inside the
        item. The window is cut here rather than by MONAI's croppers because they take the
        whole array, and a memory-mapped CT would be read in full for every patch.
        """
        case_id, index = self.items[item]
        volume = self.volumes[case_id]
        if index is not None:
            return {"image": np.take(volume.image, index, axis=self.axis + 1),
                    "label": np.take(volume.label, index, axis=self.axis)[None]}
        shape = volume.label.shape
        if window is None or rng is None or all(s <= w for s, w in zip(shape, window)):
            return {"image": np.array(volume.image), "label": np.array(volume.label)[None]}
        fg = volume.foreground
        if fg is not None and len(fg) and rng.random() < 0.5:
            centre = fg[rng.integers(len(fg))]
        else:
            centre = [rng.integers(s) for s in shape]
        starts = [int(np.clip(c - w // 2, 0, max(s - w, 0))) for c, w, s in zip(centre, window, shape)]
        box = tuple(slice(a, a + w) for a, w in zip(starts, window))
        return {"image": np.array(volume.image[(slice(None), *box)]), "label": np.array(volume.label[box])[None]}

    def draw(self, rng: np.random.Generator, foreground_share: float) -> int:
        """A random item; with probability ``foreground_share`` one containing foreground."""
        if len(self.foreground) and rng.random() < foreground_share:
            return int(rng.choice(self.foreground))
        return int(rng.integers(len(self.items)))
