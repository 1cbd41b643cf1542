"""Classification datasets: MedMNIST ``.npz``, class folders, and CSV manifests.

Every layout becomes a :class:`ClassificationDataset` of :class:`ImageCase` records;
pixels are read on demand by :func:`load_image`.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from automed.data.io import image_suffix, read_image, strip_suffix
from automed.errors import DataError

__all__ = ["ClassificationDataset", "ImageCase", "detect_classification_format", "natural_order", "open_classification",
           "summarize", "load_image", "load_mask", "read_npz", "scan_classification", "check_image_shapes", "channels_first", "with_channels", "MEDMNIST_SPLITS"]

MEDMNIST_SPLITS = ("train", "val", "test")

log = logging.getLogger("automed")


@dataclass(frozen=True)
class ImageCase:
    """One labelled image: a file (or a row of a MedMNIST array), its class and optional metadata."""

    case_id: str
    label: str | None
    image_path: Path | None = None
    index: int | None = None
    split: str | None = None
    mask_path: Path | None = None
    group: str | None = None
    site: str | None = None


@dataclass(frozen=True, eq=False)
class ClassificationDataset:
    """Labelled images and their classes (sorted, as strings).

    ``arrays`` holds the MedMNIST image arrays per split, channels first ``(N, C, *spatial)``;
    file-based layouts leave it empty. ``official_split`` is true when the data carry their own
    train/val/test split. ``n_channels`` is 3 for colour photographs read as R, G and B, else
    1; ``luminance``: colour photographs are reduced to grey (the recipe's ``colour: grey``).
    """

    source: Path
    format: str
    cases: tuple[ImageCase, ...]
    classes: tuple[str, ...]
    arrays: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    n_channels: int = 1
    luminance: bool = False

    @property
    def official_split(self) -> bool:
        return all(c.split is not None for c in self.cases)

    @property
    def has_masks(self) -> bool:
        return any(c.mask_path is not None for c in self.cases)


def detect_classification_format(path: str | Path) -> str:
    """``"medmnist"`` for a ``.npz``, ``"csv"`` for a ``.csv``, ``"class_folders"`` for a folder."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: not found.")
    if path.is_file() and path.suffix.lower() == ".npz":
        return "medmnist"
    if path.is_file() and path.suffix.lower() == ".csv":
        return "csv"
    if path.is_dir():
        return "class_folders"
    raise DataError(f"{path}: not a classification dataset; give a MedMNIST .npz, a CSV manifest "
                    "(image,label[,mask][,group][,site]) or a folder of class folders (root/<class>/<image>).")


def open_classification(path: str | Path, data_format: str = "auto", colour: bool = True,
                        class_order: tuple[str, ...] = (), ordinal: bool = False) -> ClassificationDataset:
    """Read the cases of a classification dataset and check the labels allow stratification.

    ``colour``: colour photographs are read as their R, G and B channels (else as luminance);
    the first image decides whether the dataset is colour. ``class_order``: the classes in
    this order (every one of them) instead of sorted. ``ordinal`` without a ``class_order``:
    the grades in the natural order of their names (:func:`natural_order`).

    Raises
    ------
    DataError
        Missing keys or files, a missing label column, fewer than two classes, a class
        with fewer than two images, a ``class_order`` that does not name the classes, or
        ordinal classes whose names do not tell their order.
    """
    path = Path(path)
    fmt = detect_classification_format(path) if data_format == "auto" else data_format
    if fmt == "medmnist":
        dataset = _open_medmnist(path, colour)
    else:
        dataset = with_channels({"class_folders": _open_class_folders, "csv": _open_csv}[fmt](path), colour)
    if not dataset.cases:
        raise DataError(f"{path}: the dataset holds no labelled images.")
    counts = Counter(c.label for c in dataset.cases)
    if len(counts) < 2:
        raise DataError(f"{path}: every image has the label {next(iter(counts))!r}; classification needs at least two classes.")
    rare = sorted(label for label, n in counts.items() if n < 2)
    if rare:
        raise DataError(f"{path}: class(es) {rare} have fewer than 2 images, so the data cannot be split "
                        "stratified; add images or drop the class.")
    if class_order:
        if set(class_order) != set(dataset.classes):
            raise DataError(f"{path}: the recipe's class_order {list(class_order)} does not name the dataset's classes "
                            f"{list(dataset.classes)} (each once).")
        dataset = replace(dataset, classes=tuple(class_order))
    elif ordinal:
        dataset = replace(dataset, classes=natural_order(dataset.classes, path))
        log.info("ordinal classes, lowest first (the numbers in their names): %s; set class_order to change it",
                 list(dataset.classes))
    return dataset


def natural_order(classes: tuple[str, ...], where: str | Path) -> tuple[str, ...]:
    """Grade names in the order of the numbers in them: ``grade_2`` before ``grade_10``.

    The order is taken only when every name is the same text around its numbers (``grade_1``,
    ``grade_10``; ``0``, ``1``, ``2``); otherwise the names do not say which grade is lower.

    Raises
    ------
    DataError
        If the names hold no number or differ in more than their numbers (``mild``, ``severe``;
        ``G1``, ``G2a``) or two names hold the same numbers (``grade_2``, ``grade_02``), naming
        ``where`` and asking for ``class_order``.
    """
    # the natsort package does this key; the rule that all names share one pattern needs the tokens anyway
    tokens = {name: re.split(r"(\d+)", name) for name in classes}
    patterns = {tuple(t for t in parts[::2]) for parts in tokens.values()}
    numbers = {name: tuple(int(n) for n in parts[1::2]) for name, parts in tokens.items()}
    if len(patterns) != 1 or not all(numbers.values()) or len(set(numbers.values())) < len(classes):
        raise DataError(f"{where}: the ordinal classes {sorted(classes)} do not tell their order by a number in one "
                        "naming pattern; list them lowest grade first in the recipe's class_order.")
    return tuple(sorted(classes, key=numbers.__getitem__))


def with_channels(dataset: ClassificationDataset, colour: bool) -> ClassificationDataset:
    """A file-based dataset whose first image is a colour photograph: 3 channels, or luminance."""
    if not dataset.cases or not read_image(dataset.cases[0].image_path, colour=True).colour:
        return dataset
    return replace(dataset, n_channels=3) if colour else replace(dataset, luminance=True)


def load_image(dataset: ClassificationDataset, case: ImageCase) -> np.ndarray:
    """The case's pixels as float32 ``(C, *spatial)``, 2D or 3D, NaN/Inf rejected.

    Raises
    ------
    DataError
        Not 2D or 3D, NaN or Inf values, or not the dataset's channels (a grey image among
        colour ones or the reverse), naming the file.
    """
    if case.index is not None:
        array = dataset.arrays[case.split][case.index]
        where = f"{dataset.source} [{case.split}_images][{case.index}]"
    else:
        image = read_image(case.image_path, colour=not dataset.luminance)
        where = str(case.image_path)
        if (3 if image.colour else 1) != dataset.n_channels:
            kinds = {1: "a grey image", 3: "a colour (RGB) image"}
            raise DataError(f"{where}: {kinds[3 if image.colour else 1]}, but the dataset's images are "
                            f"{kinds[dataset.n_channels].removeprefix('a ')}s (as its first image, or the images "
                            "the run was fitted on); give every image the same channels.")
        array = image.array if image.colour else image.array[None]
    if array.ndim - 1 not in (2, 3):
        raise DataError(f"{where}: image is {array.ndim - 1}D with shape {array.shape[1:]}; expected 2D or 3D.")
    array = array.astype(np.float32, copy=False)
    if not np.isfinite(array).all():
        raise DataError(f"{where}: image holds NaN or Inf values.")
    return array


def load_mask(case: ImageCase, image_shape: tuple[int, ...]) -> np.ndarray | None:
    """The case's ROI mask as bool, or None; checked against the image's spatial shape."""
    if case.mask_path is None:
        return None
    mask = read_image(case.mask_path).array
    if mask.shape != image_shape:
        raise DataError(f"{case.mask_path}: mask shape {mask.shape} does not match image {image_shape}.")
    if not mask.any():
        raise DataError(f"{case.mask_path}: mask is empty; the ROI must hold at least one voxel.")
    return mask > 0


def read_npz(path: Path, labelled: bool = True) -> dict[str, np.ndarray]:
    """The arrays of a MedMNIST-style ``.npz``: ``<split>_images`` (and ``<split>_labels`` if ``labelled``).

    Unlabelled files (for prediction) need only one ``<split>_images`` key.

    Raises
    ------
    DataError
        Not a readable ``.npz`` (a zip of ``.npy`` arrays), object or text arrays, a missing key.
    """
    import zipfile

    wanted = [f"{s}_{k}" for s in MEDMNIST_SPLITS for k in (("images", "labels") if labelled else ("images",))]
    try:
        with np.load(path, allow_pickle=False) as data:
            present = [k for k in wanted if k in data.files]
            missing = [k for k in wanted if k not in data.files]
            if (labelled and missing) or not present:
                raise DataError(f"{path}: missing key(s) {missing}; a MedMNIST file has {wanted}.")
            arrays = {key: data[key] for key in present}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        detail = "it holds Python objects, which are not loaded (allow_pickle is off)" if "allow_pickle" in str(exc) \
            else str(exc)
        raise DataError(f"{path}: cannot be read as a .npz file of arrays ({detail}).") from exc
    for key, array in arrays.items():
        if array.dtype.kind not in "iubf":
            raise DataError(f"{path}: {key} holds {array.dtype} values; it must hold "
                            f"{'integer class numbers' if key.endswith('_labels') else 'numbers'}.")
        if key.endswith("_labels") and array.dtype.kind == "f" and not np.equal(np.mod(array, 1), 0).all():
            raise DataError(f"{path}: {key} holds non-integer values; labels must be integer class numbers.")
    return arrays


def _open_medmnist(path: Path, colour: bool) -> ClassificationDataset:
    data = read_npz(path)
    arrays, cases = {}, []
    for split in MEDMNIST_SPLITS:
        images, labels = data[f"{split}_images"], data[f"{split}_labels"]
        if len(images) == 0:
            raise DataError(f"{path}: {split}_images is empty; each of {list(MEDMNIST_SPLITS)} needs images.")
        if labels.ndim == 2 and labels.shape[1] > 1:
            raise DataError(f"{path}: {split}_labels has shape {labels.shape}; multi-label tasks are not supported.")
        labels = labels.reshape(-1)
        if len(images) != len(labels):
            raise DataError(f"{path}: {split}_images has {len(images)} images but {split}_labels {len(labels)} labels.")
        arrays[split] = channels_first(images, colour)
        cases += [ImageCase(f"{split}_{i}", str(int(label)), index=i, split=split) for i, label in enumerate(labels)]
    check_image_shapes(path, arrays)
    classes = tuple(sorted({c.label for c in cases}, key=int))
    n_channels = next(iter(arrays.values())).shape[1]
    return ClassificationDataset(path, "medmnist", tuple(cases), classes, arrays, n_channels=n_channels,
                                 luminance=not colour and is_colour_array(data["train_images"]))


def is_colour_array(images: np.ndarray) -> bool:
    """MedMNIST colour arrays are ``(N, H, W, 3|4)`` (e.g. PathMNIST, DermaMNIST)."""
    return images.ndim == 4 and images.shape[-1] in (3, 4)


def channels_first(images: np.ndarray, colour: bool) -> np.ndarray:
    """MedMNIST images as ``(N, C, *spatial)``: colour arrays as R, G, B (alpha dropped) or, without
    ``colour``, as luminance (ITU-R 601 weights, as :func:`automed.data.io.read_image`); grey ones as one channel."""
    if not is_colour_array(images):
        return images[:, None]
    if colour:
        return np.moveaxis(images[..., :3], -1, 1)
    return (images[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[:, None]


def check_image_shapes(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Every split's images must have one shape (``(N, C, H, W)`` or ``(N, C, D, H, W)``)."""
    shapes = {split: images.shape[1:] for split, images in arrays.items()}
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{split}_images {tuple(shape[1:])}" for split, shape in shapes.items())
        raise DataError(f"{path}: the splits hold images of different shapes ({listed}); "
                        "resize them to one shape first.")


def _open_class_folders(root: Path) -> ClassificationDataset:
    from automed.data.dataset import detect_format

    try:
        layout = detect_format(root)
    except DataError:
        layout = None
    if layout is not None:
        raise DataError(f"{root}: this is a segmentation dataset ({layout} layout), not class folders; "
                        "fit it with --task segmentation.")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise DataError(f"{root}: no class folders; expected root/<class_name>/<image>.")
    cases = []
    for folder in folders:
        nested = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")
                        and not image_suffix(p))
        if nested:
            raise DataError(f"{folder}: holds sub-folders {nested[:3]}, which would not be read; put the images "
                            "directly in the class folder (root/<class>/<image>).")
        images = [p for p in sorted(folder.iterdir()) if not p.name.startswith(".") and image_suffix(p)]
        if not images:
            raise DataError(f"{folder}: class folder holds no images; add images or remove the folder.")
        cases += [ImageCase(f"{folder.name}/{strip_suffix(image)}", folder.name, image_path=image) for image in images]
    return ClassificationDataset(root, "class_folders", tuple(cases), tuple(f.name for f in folders))


def _open_csv(path: Path) -> ClassificationDataset:
    from automed.data.csv_rows import read_csv_rows
    from automed.data.manifest import resolve_listed

    cases, seen, line_of = [], set(), {}
    for line, row in read_csv_rows(path, ("image", "label")):
        image = resolve_listed(path, row.get("image", ""), line, "image")
        if image.resolve() in line_of:
            raise DataError(f"{path} line {line}: image '{row['image']}' is already listed on line "
                            f"{line_of[image.resolve()]}; list each image once (twice, it could land on both "
                            "sides of a split).")
        line_of[image.resolve()] = line
        mask = resolve_listed(path, row["mask"], line, "mask") if row.get("mask") else None
        label = (row.get("label") or "").strip()
        if not label:
            raise DataError(f"{path} line {line}: empty label.")
        case_id = strip_suffix(image)
        if case_id in seen:
            case_id = f"{case_id}@{line}"
        seen.add(case_id)
        cases.append(ImageCase(case_id, label, image_path=image, mask_path=mask,
                               group=row.get("group") or None, site=row.get("site") or None))
    classes = tuple(sorted({c.label for c in cases}))
    return ClassificationDataset(path, "csv", tuple(cases), classes)


def scan_classification(dataset: ClassificationDataset) -> list[str]:
    """Read every image (and ROI mask) of ``dataset``; return the problems found, one sentence each."""
    problems = []
    for case in dataset.cases:
        try:
            image = load_image(dataset, case)
            load_mask(case, image.shape[1:])
        except DataError as exc:
            problems.append(str(exc))
    return problems


def summarize(dataset: ClassificationDataset) -> dict:
    """The classification counterpart of the segmentation fingerprint (JSON-ready)."""
    first = load_image(dataset, dataset.cases[0])
    by_split: dict[str, Counter] = {}
    for case in dataset.cases:
        by_split.setdefault(case.split or "all", Counter())[case.label] += 1
    return {
        "n_cases": len(dataset.cases), "dims": first.ndim - 1, "shape_of_first": list(first.shape[1:]),
        "modality": "unknown", "n_channels": dataset.n_channels, "colour_as_luminance": dataset.luminance,
        "classes": {str(k): name for k, name in enumerate(dataset.classes)},
        "class_counts": {split: {c: counts.get(c, 0) for c in dataset.classes} for split, counts in by_split.items()},
        "official_split": dataset.official_split, "has_masks": dataset.has_masks,
        "sites": sorted({c.site for c in dataset.cases if c.site}), "grouped": any(c.group for c in dataset.cases),
    }
