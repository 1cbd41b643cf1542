"""Registration datasets: the volumes, the pairs to register, and one common grid every rung works on.

Layouts (detected in this order):

- ``learn2reg``: a folder with ``dataset.json`` listing ``training`` images (optional ``label``) and the
  pairs ``registration_val`` / ``registration_test`` (``{"fixed", "moving"}``). An MSD ``dataset.json`` without
  pairs is read the same way; the pairs are then drawn from held-out subjects (seeded): each held-out image is
  registered to the next, so no image of an evaluation pair is ever trained on.
- ``pairs``: a CSV ``fixed,moving[,fixed_label,moving_label][,split]`` (``split``: ``train``, ``val`` or ``test``;
  default ``val``); paths relative to the CSV.
- ``--atlas IMAGE[,LABEL]`` (recipe ``atlas``): every held-out subject is the fixed image of one pair whose
  moving image is the atlas (atlas-to-subject: the atlas's labels land on the subject).

The grid: every volume is resampled to the median spacing where it differs, then centre-padded into the
smallest shape that holds them all, rounded up to a multiple of 16; its intensities are scaled to [0, 1]
between its 0.5th and 99.5th percentiles. :class:`Placement` maps the grid back to a volume's own geometry.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from automed.errors import DataError

__all__ = ["GRID_MULTIPLE", "GridVolume", "Pair", "Placement", "RegistrationDataset", "Volume", "detect_registration_format",
           "grid_fingerprint", "load_on_grid", "open_registration", "read_volume"]

GRID_MULTIPLE = 16
"""The grid's sides are multiples of this, so a U-Net's poolings divide them."""
MAX_GRID_SIDE = 256


@dataclass(frozen=True)
class Volume:
    """One image (and its label, if any) of a registration dataset."""

    case_id: str
    image: Path
    label: Path | None = None


@dataclass(frozen=True)
class Pair:
    """Register ``moving`` onto ``fixed`` (volume ids); ``case_id`` names the pair (``moving__to__fixed``)."""

    fixed: str
    moving: str

    @property
    def case_id(self) -> str:
        return f"{self.moving}__to__{self.fixed}"


@dataclass(frozen=True)
class RegistrationDataset:
    """Volumes by id, the volumes learned rungs may train on, and the pairs rungs are judged (``evaluation``)
    and tested on. ``cases`` are the evaluation pairs (what the runner judges)."""

    source: Path
    format: str
    volumes: dict[str, Volume]
    training: tuple[str, ...]
    evaluation: tuple[Pair, ...]
    test: tuple[Pair, ...] = ()
    atlas: str | None = None
    notes: tuple[str, ...] = field(default=())
    held_out: tuple[str, ...] = ()
    """The subjects held out of training for the evaluation pairs (atlas-to-subject pairs are made of them)."""

    @property
    def cases(self) -> tuple[Pair, ...]:
        return self.evaluation

    @property
    def labelled(self) -> bool:
        """Whether every volume of an evaluation pair has a label (else rungs are judged by similarity alone)."""
        return all(self.volumes[v].label is not None for p in self.evaluation for v in (p.fixed, p.moving))


@dataclass(frozen=True)
class Placement:
    """Where a volume sits on the grid: its own shape and geometry (after any resampling), and the first grid
    voxel it occupies per axis (array order)."""

    shape: tuple[int, ...]
    offset: tuple[int, ...]
    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: tuple[float, ...]

    def region(self) -> tuple[slice, ...]:
        """The grid's slices holding the volume."""
        return tuple(slice(o, o + s) for o, s in zip(self.offset, self.shape))


@dataclass(frozen=True)
class GridVolume:
    """A volume on the grid: its image ``(channels, *grid)`` in [0, 1], its label (or None), its placement."""

    image: np.ndarray
    label: np.ndarray | None
    placement: Placement

    @property
    def region(self) -> np.ndarray:
        """A boolean mask of the grid voxels the volume covers (not the padding)."""
        mask = np.zeros(self.image.shape[1:], bool)
        mask[self.placement.region()] = True
        return mask


def detect_registration_format(path: Path) -> str:
    """``learn2reg`` (a folder with dataset.json) or ``pairs`` (a CSV)."""
    if path.is_file() and path.suffix.lower() == ".csv":
        return "pairs"
    if (path / "dataset.json").is_file():
        return "learn2reg"
    raise DataError(f"{path}: not a registration dataset: expected a folder with dataset.json (Learn2Reg or MSD) "
                    "or a CSV of pairs (fixed,moving[,fixed_label,moving_label]).")


def open_registration(path: str | Path, data_format: str = "auto", atlas: str | None = None,
                      held_out: float = 0.25, random_state: int = 0) -> RegistrationDataset:
    """Open a registration dataset (see the module docstring); every file named is checked to exist, every pair
    to be new and its images to share dimensionality and channels.

    Raises
    ------
    DataError
        Naming the file: a missing image or label, a label without its image, a pair listed twice, a pair of a
        2D and a 3D image or of images with different channel counts, or no pair at all.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder.")
    kind = detect_registration_format(path) if data_format == "auto" else data_format
    if kind == "pairs":
        dataset = _open_pairs_csv(path)
    elif kind == "learn2reg":
        dataset = _open_learn2reg(path, held_out, random_state)
    else:
        raise DataError(f"{path}: unknown registration format {kind!r}; expected learn2reg or pairs.")
    if atlas is not None:
        dataset = _with_atlas(dataset, atlas)
    _check_pairs(dataset)
    return dataset


def _open_learn2reg(root: Path, held_out: float, random_state: int) -> RegistrationDataset:
    index = root / "dataset.json"
    try:
        meta = json.loads(index.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{index}: not readable JSON ({exc}).") from None
    volumes: dict[str, Volume] = {}

    def volume(entry: str, label: str | None = None, where: str = "") -> str:
        image = _existing(root, entry, index, where)
        case_id = _stem(image)
        if case_id not in volumes or (label and volumes[case_id].label is None):
            label_path = _existing(root, label, index, f"{where} label") if label else _sibling_label(image)
            volumes[case_id] = Volume(case_id, image, label_path)
        return case_id

    listed = []
    for i, entry in enumerate(meta.get("training") or []):
        if isinstance(entry, str):
            listed.append(volume(entry, None, f"training[{i}]"))
        elif isinstance(entry, dict) and "image" in entry:
            listed.append(volume(entry["image"], entry.get("label"), f"training[{i}]"))
        else:
            raise DataError(f"{index}: training[{i}] names no image.")
    given = {}
    for split in ("registration_val", "registration_test"):
        pairs = []
        for i, entry in enumerate(meta.get(split) or []):
            if not (isinstance(entry, dict) and "fixed" in entry and "moving" in entry):
                raise DataError(f"{index}: {split}[{i}] is not {{\"fixed\": ..., \"moving\": ...}}.")
            pairs.append(Pair(volume(entry["fixed"], None, f"{split}[{i}] fixed"),
                              volume(entry["moving"], None, f"{split}[{i}] moving")))
        given[split] = tuple(pairs)
    notes: tuple[str, ...] = ()
    if given["registration_val"]:
        evaluation, test = given["registration_val"], given["registration_test"]
        in_pairs = {v for p in evaluation + test for v in (p.fixed, p.moving)}
        training = tuple(v for v in dict.fromkeys(listed) if v not in in_pairs)
        out = sorted({p.fixed for p in evaluation})
    else:
        if len(listed) < 4:
            raise DataError(f"{index}: names no registration_val pairs and too few training images ({len(listed)}) "
                            "to hold some out for evaluation pairs.")
        order = [listed[i] for i in np.random.default_rng(random_state).permutation(len(listed))]
        n_out = max(2, round(held_out * len(order)))
        out, training = sorted(order[:n_out]), tuple(sorted(order[n_out:]))
        # each held-out image moves onto the next one (an atlas replaces these by atlas-to-subject pairs)
        evaluation = tuple(Pair(out[(i + 1) % len(out)], out[i]) for i in range(len(out)))
        test = ()
        notes = (f"dataset.json names no registration_val pairs: {len(out)} of its {len(listed)} images "
                 f"(seeded, {held_out:.0%}) are held out for evaluation pairs; the rest are trained on",)
    return RegistrationDataset(root, "learn2reg", volumes, training, evaluation, test, None, notes, tuple(out))


def _open_pairs_csv(path: Path) -> RegistrationDataset:
    try:
        with path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: not a readable CSV ({exc}).") from None
    if not rows or not {"fixed", "moving"} <= set(rows[0]):
        raise DataError(f"{path}: expected the columns fixed,moving[,fixed_label,moving_label][,split].")
    volumes: dict[str, Volume] = {}
    splits: dict[str, list[Pair]] = {"train": [], "val": [], "test": []}
    for n, row in enumerate(rows, start=2):
        ids = []
        for side in ("fixed", "moving"):
            label = (row.get(f"{side}_label") or "").strip()
            image = (row.get(side) or "").strip()
            if not image:
                raise DataError(f"{path}: line {n}: {side}_label {label!r} without a {side} image."
                                if label else f"{path}: line {n}: no {side} image.")
            image_path = _existing(path.parent, image, path, f"line {n} {side}")
            label_path = _existing(path.parent, label, path, f"line {n} {side}_label") if label else None
            case_id = _stem(image_path)
            known = volumes.get(case_id)
            if known is not None and known.image != image_path:
                raise DataError(f"{path}: line {n}: {image_path} and {known.image} share the name {case_id}; "
                                "rename one.")
            volumes[case_id] = Volume(case_id, image_path, label_path or (known.label if known else None))
            ids.append(case_id)
        split = (row.get("split") or "val").strip().lower()
        if split not in splits:
            raise DataError(f"{path}: line {n}: split {split!r}; expected train, val or test.")
        splits[split].append(Pair(*ids))
    training = tuple(dict.fromkeys(v for p in splits["train"] for v in (p.fixed, p.moving)))
    evaluation = tuple(splits["val"])
    return RegistrationDataset(path, "pairs", volumes, training, evaluation, tuple(splits["test"]),
                               held_out=tuple(sorted({p.fixed for p in evaluation})))


def _with_atlas(dataset: RegistrationDataset, atlas: str) -> RegistrationDataset:
    """Atlas-to-subject: every held-out subject is registered to with the atlas as the moving image."""
    image, _, label = atlas.partition(",")
    image_path = _existing(Path.cwd(), image.strip(), Path("--atlas"), "image")
    label_path = _existing(Path.cwd(), label.strip(), Path("--atlas"), "label") if label.strip() else None
    atlas_id = f"atlas_{_stem(image_path)}"
    volumes = {**dataset.volumes, atlas_id: Volume(atlas_id, image_path, label_path)}
    return RegistrationDataset(dataset.source, dataset.format, volumes, dataset.training,
                               tuple(Pair(s, atlas_id) for s in dataset.held_out),
                               tuple(Pair(p.fixed, atlas_id) for p in dataset.test), atlas_id,
                               (*dataset.notes, f"atlas-to-subject: {image_path} is the moving image of every pair"),
                               dataset.held_out)


def _check_pairs(dataset: RegistrationDataset) -> None:
    """Refuse a pair listed twice, an image registered to itself, and pairs mixing dimensionality or channels."""
    from automed.data.headers import read_checked_header

    if not dataset.evaluation:
        raise DataError(f"{dataset.source}: no pair to register.")
    seen: set[tuple[str, str]] = set()
    headers: dict[str, tuple[int, int]] = {}

    def shape_of(case_id: str) -> tuple[int, int]:
        if case_id not in headers:
            header = read_checked_header(dataset.volumes[case_id].image)
            headers[case_id] = (header.GetDimension(), header.GetNumberOfComponents())
        return headers[case_id]

    for pair in (*dataset.evaluation, *dataset.test):
        if (pair.fixed, pair.moving) in seen:
            raise DataError(f"{dataset.source}: the pair {dataset.volumes[pair.moving].image} -> "
                            f"{dataset.volumes[pair.fixed].image} is listed twice.")
        if pair.fixed == pair.moving:
            raise DataError(f"{dataset.source}: {dataset.volumes[pair.fixed].image} is paired with itself.")
        seen.add((pair.fixed, pair.moving))
        (fixed_dims, fixed_channels), (moving_dims, moving_channels) = shape_of(pair.fixed), shape_of(pair.moving)
        moving = dataset.volumes[pair.moving].image
        if fixed_dims != moving_dims:
            raise DataError(f"{moving}: {moving_dims}D, but its fixed image {dataset.volumes[pair.fixed].image} is "
                            f"{fixed_dims}D; a pair must be both 2D or both 3D.")
        if fixed_channels != moving_channels:
            raise DataError(f"{moving}: {moving_channels} channel(s), but its fixed image "
                            f"{dataset.volumes[pair.fixed].image} has {fixed_channels}.")


def read_volume(path: Path, label: bool = False) -> Any:
    """The SimpleITK image of ``path``, read once after its header is checked; a ``label`` must hold
    non-negative integers.

    Raises
    ------
    DataError
        Naming the file: a header automed refuses, pixels SimpleITK cannot read, or a label that is not integer.
    """
    import SimpleITK as sitk

    from automed.data.headers import read_checked_header

    try:
        image = read_checked_header(path).Execute()
    except RuntimeError as exc:
        raise DataError(f"{path}: cannot be read as an image ({str(exc).strip().splitlines()[-1]}).") from None
    if label:
        values = sitk.GetArrayViewFromImage(image)
        if not np.allclose(values, np.round(values)) or values.min() < 0:
            raise DataError(f"{path}: a label must hold non-negative integers.")
    return image


def grid_fingerprint(dataset: RegistrationDataset) -> dict[str, Any]:
    """The common grid (shape, spacing), the dimensionality, and the label classes of ``dataset``."""
    import SimpleITK as sitk

    from automed.data.headers import read_checked_header

    spacings, shapes, dims = [], [], set()
    for volume in dataset.volumes.values():
        header = read_checked_header(volume.image)
        dims.add(header.GetDimension())
        spacings.append(header.GetSpacing()[::-1])
        shapes.append(header.GetSize()[::-1])
    if len(dims) > 1:
        raise DataError(f"{dataset.source}: images of different dimensionality ({sorted(dims)}D) are mixed.")
    spacing = tuple(float(s) for s in np.median(np.asarray(spacings), axis=0))
    resampled = [tuple(math.ceil(n * s / t) for n, s, t in zip(shape, own, spacing))
                 for shape, own in zip(shapes, spacings)]
    grid = tuple(min(MAX_GRID_SIDE, GRID_MULTIPLE * math.ceil(max(axis) / GRID_MULTIPLE)) for axis in zip(*resampled))
    classes = set()
    for volume in dataset.volumes.values():
        if volume.label is not None:
            classes |= set(np.unique(sitk.GetArrayFromImage(sitk.ReadImage(str(volume.label)))).astype(int).tolist())
    return {"dims": dims.pop(), "grid": list(grid), "spacing": list(spacing), "n_volumes": len(dataset.volumes),
            "n_training": len(dataset.training), "n_evaluation_pairs": len(dataset.evaluation),
            "n_test_pairs": len(dataset.test), "labels": sorted(c for c in classes if c > 0),
            "labelled": dataset.labelled, "atlas": dataset.atlas, "notes": list(dataset.notes)}


def load_on_grid(volume: Volume, fingerprint: dict[str, Any]) -> GridVolume:
    """``volume`` on the grid: its image ``(channels, *grid)`` scaled to [0, 1], its label ``grid`` (or None) and
    its placement. A volume larger than the grid is centre-cropped (only past 256 voxels a side)."""
    import SimpleITK as sitk

    image = read_volume(volume.image)
    label = None if volume.label is None else read_volume(volume.label, label=True)
    spacing = tuple(fingerprint["spacing"])
    if not np.allclose(image.GetSpacing()[::-1], spacing, rtol=1e-2):
        image, label = _resampled(image, spacing, sitk.sitkLinear), (
            None if label is None else _resampled(label, spacing, sitk.sitkNearestNeighbor))
    array = sitk.GetArrayFromImage(image).astype(np.float32)
    channels = array[None] if image.GetNumberOfComponentsPerPixel() == 1 else np.moveaxis(array, -1, 0)
    grid = tuple(fingerprint["grid"])
    shape = channels.shape[1:]
    offset = tuple((g - s) // 2 for g, s in zip(grid, shape))
    placed = np.zeros((channels.shape[0], *grid), np.float32)
    source = tuple(slice(max(0, -o), max(0, -o) + min(s, g)) for o, s, g in zip(offset, shape, grid))
    target = tuple(slice(max(0, o), max(0, o) + min(s, g)) for o, s, g in zip(offset, shape, grid))
    for c, channel in enumerate(channels):
        low, high = np.percentile(channel, [0.5, 99.5])
        placed[c][target] = np.clip((channel[source] - low) / max(high - low, 1e-6), 0, 1)
    grid_label = None
    if label is not None:
        values = sitk.GetArrayFromImage(label).astype(np.int16)
        if values.shape != shape:
            raise DataError(f"{volume.label}: shape {values.shape[::-1]} differs from its image {volume.image} "
                            f"{shape[::-1]}.")
        grid_label = np.zeros(grid, np.int16)
        grid_label[target] = values[source]
    placement = Placement(tuple(int(s) for s in shape), offset, image.GetSpacing(), image.GetOrigin(),
                          image.GetDirection())
    return GridVolume(placed, grid_label, placement)


def _resampled(image: Any, spacing: tuple[float, ...], interpolator: int) -> Any:
    import SimpleITK as sitk

    xyz = spacing[::-1]
    size = [max(1, round(n * s / t)) for n, s, t in zip(image.GetSize(), image.GetSpacing(), xyz)]
    return sitk.Resample(image, size, sitk.Transform(), interpolator, image.GetOrigin(), xyz, image.GetDirection(),
                         0.0, image.GetPixelID())


def _existing(root: Path, name: str, listed_in: Path, what: str) -> Path:
    path = Path(name) if Path(name).is_absolute() else (root / name)
    path = Path(str(path).replace("/./", "/"))
    if not path.is_file():
        raise DataError(f"{path}: missing ({what} in {listed_in}).")
    return path


def _sibling_label(image: Path) -> Path | None:
    """``labelsTr/<name>`` beside an ``imagesTr/<name>`` image, when it exists (Learn2Reg's and MSD's layout)."""
    if image.parent.name.startswith("images"):
        candidate = image.parent.parent / image.parent.name.replace("images", "labels", 1) / image.name
        if candidate.is_file():
            return candidate
    return None


def _stem(path: Path) -> str:
    from automed.data.io import strip_suffix

    return strip_suffix(path)
