"""Dataset layouts: find the cases of a folder in MSD, nnU-Net or plain-folder layout.

Only file names are read here (and, in the folder layout, the first image, to tell colour
photographs from grey images); images are opened by :mod:`automed.data.loading`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from automed.data.case import Case
from automed.data.csv_rows import read_csv_rows
from automed.data.io import (COLOUR_CHANNELS, LUMINANCE, TWO_D_SUFFIXES, folder_problem, image_suffix, read_image,
                              strip_suffix)
from automed.data.manifest import open_manifest
from automed.data.pairing import pair_by_name
from automed.data.raters import find_rater_folders, with_raters
from automed.errors import DataError

__all__ = ["Dataset", "detect_format", "files_by_stem", "group_channels", "open_dataset", "visible_entries"]

IMAGE_DIRS = ("images", "imgs", "image")
LABEL_DIRS = ("labels", "masks", "label", "mask")
ROI_DIRS = ("rois", "roi", "fov")  # beside images/ and labels/: one region-of-interest mask per image


@dataclass(frozen=True)
class Dataset:
    """The cases of a dataset folder and what its metadata declares.

    Attributes
    ----------
    classes : dict or None
        Declared label value -> class name; ``None`` when the layout declares none
        (the values are then read from the label files).
    channel_names : tuple of str
        One name per channel (e.g. ``("MRI",)``, ``("T1", "FLAIR")``, ``("R", "G", "B")``).
    channels_in_one_file : bool
        The channels are stored in one file: MSD's 4th axis, or a colour photograph's R, G
        and B (with the one channel ``("luminance",)``: the photograph reduced to grey).
    """

    root: Path
    format: str
    cases: tuple[Case, ...]
    classes: dict[int, str] | None = None
    channel_names: tuple[str, ...] = ("unknown",)
    channels_in_one_file: bool = False

    @property
    def n_channels(self) -> int:
        return len(self.channel_names)


def visible_entries(folder: Path) -> list[Path]:
    """Entries of ``folder`` that are images or DICOM folders, skipping hidden files (``._x``)."""
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".") and (p.is_dir() or image_suffix(p)))


def detect_format(root: str | Path, raters: tuple[str, ...] = ()) -> str:
    """Name the layout of ``root``: ``"msd"``, ``"nnunet"``, ``"folders"`` or ``"csv"`` (a manifest file).

    Raises
    ------
    DataError
        If ``root`` is not a folder or manifest, or matches no known layout.
    """
    root = Path(root)
    if root.is_file() and root.suffix.lower() == ".csv":
        return "csv"
    if not root.is_dir():
        raise DataError(f"{root}: not a folder; give the dataset's root folder.")
    meta = root / "dataset.json"
    if meta.is_file() and (root / "imagesTr").is_dir():
        info = _read_json(meta)
        return "nnunet" if "channel_names" in info or "file_ending" in info else "msd"
    if _pair_dirs(root) is not None or (_images_dir(root) is not None
                                        and (raters or find_rater_folders(root, None, (), LABEL_DIRS))):
        return "folders"
    raise DataError(
        f"{root}: not a dataset folder. Expected dataset.json with imagesTr/ and labelsTr/ "
        "(MSD or nnU-Net layout), or images/ and labels/ folders matched by file name."
    )


def open_dataset(root: str | Path, data_format: str = "auto", colour: bool = True, raters: tuple[str, ...] = (),
                 consensus: str = "staple") -> Dataset:
    """List the labelled cases of the dataset at ``root``.

    Parameters
    ----------
    root : path
        Dataset folder.
    data_format : {"auto", "msd", "nnunet", "folders", "csv"}
        Layout; ``"auto"`` detects it.
    colour : bool
        Colour photographs as their R, G and B channels (else as luminance).
    raters, consensus : tuple of str, str
        Several annotators (:mod:`automed.data.raters`): glob patterns of the rater folders (empty: the
        ``<labels>_<rater>/`` folders, if any), and how their masks make each case's label.

    Raises
    ------
    DataError
        Not a dataset, no cases, or an image without label (or label without image); a rater folder
        without a mask of a case, or with a mask of no case.
    """
    root = Path(root)
    fmt = detect_format(root, raters) if data_format == "auto" else data_format
    if fmt != "csv" and not root.is_dir():
        raise DataError(f"{root}: not a folder; give the dataset's root folder.")
    opener = {"msd": _open_msd, "nnunet": _open_nnunet, "folders": _open_folders, "csv": _open_csv}[fmt]
    labels_dir = _labels_dir(root, fmt)
    dataset = opener(root) if labels_dir is not None or fmt == "csv" else _open_images(root)
    if fmt == "csv" and raters:
        raise DataError(f"{root}: a manifest names one label per image; give several raters as a folder per rater "
                        "beside images/ (see the README, 'Several annotators').")
    names = ("labelsTr",) if fmt in ("msd", "nnunet") else LABEL_DIRS
    if folders := find_rater_folders(root, labels_dir, raters, names) if fmt != "csv" else {}:
        dataset = replace(dataset, cases=with_raters(dataset.cases, folders, consensus))
    if fmt in ("folders", "csv"):
        dataset = _with_channels(dataset, colour)
    if not dataset.cases:
        raise DataError(f"{root}: the dataset holds no labelled cases.")
    groups, sites = _read_groups(root, {c.case_id for c in dataset.cases})
    if groups:
        cases = tuple(replace(c, group=groups[c.case_id], site=sites.get(c.case_id)) for c in dataset.cases)
        dataset = replace(dataset, cases=cases)
    return replace(dataset, cases=with_dicom_sites(dataset.cases))


def with_dicom_sites(cases: tuple[Case, ...]) -> tuple[Case, ...]:
    """``cases``, each DICOM series without a site given (``groups.csv``) taking the one its header names
    (:func:`automed.data.io.dicom_site`)."""
    from automed.data.io import dicom_site

    return tuple(replace(c, site=dicom_site(c.image_paths[0])) if c.site is None and c.image_paths[0].is_dir() else c
                 for c in cases)


def open_recorded(path: str | Path, data_format: str, recipe: dict | None) -> Dataset:
    """The dataset at ``path`` opened as a run's resolved ``recipe`` (its ``recipe.yaml`` as a dict) opened it."""
    recipe = recipe or {}
    return open_dataset(path, data_format, recipe.get("colour", "rgb") == "rgb", tuple(recipe.get("raters") or ()),
                        recipe.get("consensus") or "staple")


def _read_json(path: Path) -> dict:
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc}).") from exc
    if not isinstance(info, dict):
        raise DataError(f"{path}: expected a JSON object.")
    return info


def _labels_mapping(path: Path, labels: object, value_to_name: bool) -> dict[int, str]:
    """Declared classes as {value: name}; MSD writes value->name, nnU-Net name->value."""
    if not isinstance(labels, dict) or not labels:
        raise DataError(f"{path}: 'labels' must be a non-empty mapping.")
    try:
        if value_to_name:
            return {int(k): str(v) for k, v in labels.items()}
        return {int(v): str(k) for k, v in labels.items()}
    except (TypeError, ValueError) as exc:
        raise DataError(f"{path}: 'labels' holds a non-integer label value ({exc}); nnU-Net region labels are not supported.") from exc


def _channel_names(path: Path, key: str, channels: object) -> tuple[str, ...]:
    """Channel names in channel order from ``{"0": "T1", "1": "FLAIR"}``; the keys must be 0, 1, ..."""
    try:
        order = sorted(channels, key=int) if isinstance(channels, dict) else None
    except (TypeError, ValueError):
        order = None
    if not order or [int(k) for k in order] != list(range(len(order))):
        raise DataError(f"{path}: '{key}' must map the channel numbers 0, 1, ... to names, e.g. "
                        f'{{"0": "T1", "1": "FLAIR"}}; got {json.dumps(channels)[:80]}.')
    return tuple(str(channels[k]) for k in order)


def _check_orphans(labels_dir: Path, used: set[Path]) -> None:
    for label in visible_entries(labels_dir):
        if label not in used:
            raise DataError(f"{label}: label without image; add its image or remove the label.")


def _open_msd(root: Path) -> Dataset:
    meta = root / "dataset.json"
    info = _read_json(meta)
    classes = _labels_mapping(meta, info.get("labels"), value_to_name=True)
    channel_names = _channel_names(meta, "modality", info.get("modality") or {"0": "unknown"})
    entries = info.get("training")
    if entries is None:
        raise DataError(f"{meta}: no 'training' list; is this an MSD dataset.json?")
    if not isinstance(entries, list):
        raise DataError(f"{meta}: 'training' must be a list of {{\"image\": ..., \"label\": ...}} entries, "
                        f"got a {type(entries).__name__}.")
    cases, first_entry = [], {}
    for number, entry in enumerate(entries):
        missing = [k for k in ("image", "label") if not isinstance(entry, dict) or not isinstance(entry.get(k), str)]
        if missing:
            raise DataError(f"{meta}: training entry {number} ({entry!r:.80}) has no {' or '.join(repr(k) for k in missing)} "
                            "path; every entry needs both.")
        image = root / entry["image"]
        label = root / entry["label"]
        if not label.exists():
            raise DataError(f"{image}: image without label ({label} is missing).")
        if not image.exists():
            raise DataError(f"{label}: label without image ({image} is missing).")
        case_id = strip_suffix(image)
        if case_id in first_entry:
            raise DataError(f"{meta}: case '{case_id}' is listed twice in 'training' (entries {first_entry[case_id]} "
                            f"and {number}); list each case once.")
        first_entry[case_id] = number
        cases.append(Case(case_id, (image,), label))
    if (root / "labelsTr").is_dir():
        _check_orphans(root / "labelsTr", {c.label_path for c in cases})
    return Dataset(root, "msd", tuple(cases), classes, channel_names, channels_in_one_file=len(channel_names) > 1)


def _open_nnunet(root: Path) -> Dataset:
    meta = root / "dataset.json"
    info = _read_json(meta)
    for key in ("channel_names", "labels", "file_ending"):
        if key not in info:
            raise DataError(f"{meta}: missing '{key}' required by the nnU-Net layout.")
    classes = _labels_mapping(meta, info["labels"], value_to_name=False)
    channel_names = _channel_names(meta, "channel_names", info["channel_names"])
    ending = info["file_ending"]
    if not isinstance(ending, str) or not ending.startswith(".") or len(ending) < 2:
        fix = f'write ".{ending}"' if isinstance(ending, str) and ending.strip(".") else 'e.g. ".nii.gz" or ".png"'
        raise DataError(f"{meta}: file_ending {ending!r} must be a file suffix with its leading dot; {fix}.")
    images = sorted(p for p in (root / "imagesTr").glob(f"*{ending}") if not p.name.startswith("."))
    if not images and (found := visible_entries(root / "imagesTr")):
        raise DataError(f"{meta}: file_ending '{ending}' matches no file in imagesTr/, which holds e.g. "
                        f"{found[0].name}; correct file_ending.")
    # nnU-Net stores a photograph's R, G and B in one CASE_0000.png (channel_names R, G, B)
    rgb_in_one_file = _rgb_in_one_file(channel_names, ending, images)
    grouped = {c.case_id: c for c in group_channels(images, 1 if rgb_in_one_file else len(channel_names),
                                                       root / "imagesTr")}
    labels_dir = root / "labelsTr"
    cases = []
    for case_id, case in sorted(grouped.items()):
        label = labels_dir / f"{case_id}{ending}"
        if not label.exists():
            raise DataError(f"{case.image_paths[0]}: image without label ({label} is missing).")
        cases.append(Case(case_id, case.image_paths, label))
    if labels_dir.is_dir():
        _check_orphans(labels_dir, {c.label_path for c in cases})
    return Dataset(root, "nnunet", tuple(cases), classes, channel_names, channels_in_one_file=rgb_in_one_file)


def _rgb_in_one_file(channel_names: tuple[str, ...], ending: str, images: list[Path]) -> bool:
    """Three channels stored as one colour file per case (``CASE_0000.png``), as nnU-Net does for RGB."""
    return (len(channel_names) == 3 and ending.lower() in TWO_D_SUFFIXES and bool(images)
            and all(strip_suffix(p).endswith("_0000") for p in images))


def group_channels(files: list[Path], n_channels: int, where: Path) -> Iterator[Case]:
    """Cases from nnU-Net-style channel files (``CASE_0000.ext`` ...), each with all ``n_channels``.

    Raises
    ------
    DataError
        A file not named so, a channel out of range or given twice, or a case missing a channel
        (``where`` names the folder).
    """
    by_case: dict[str, dict[int, Path]] = {}
    for f in files:
        stem = strip_suffix(f)
        case_id, _, channel = stem.rpartition("_")
        if not case_id or not channel.isdigit() or len(channel) != 4:
            raise DataError(f"{f}: expected a name like CASE_0000{image_suffix(f)} (case id, underscore, 4-digit "
                            f"channel number, for {n_channels} channel(s)).")
        if int(channel) >= n_channels:
            raise DataError(f"{f}: channel {int(channel)}, but there are {n_channels} channel(s) (0 to "
                            f"{n_channels - 1}); list it in channel_names or remove the file.")
        channels = by_case.setdefault(case_id, {})
        if int(channel) in channels:
            raise DataError(f"{channels[int(channel)]} and {f.name} are both channel {int(channel)} of case "
                            f"'{case_id}'; keep one of them.")
        channels[int(channel)] = f
    for case_id, channels in sorted(by_case.items()):
        missing = sorted(set(range(n_channels)) - set(channels))
        if missing:
            raise DataError(f"{where}: case '{case_id}' lacks channel(s) {missing} of {n_channels}.")
        yield Case(case_id, tuple(channels[i] for i in range(n_channels)))


def _pair_dirs(root: Path) -> tuple[Path, Path] | None:
    images = _images_dir(root)
    labels = next((root / d for d in LABEL_DIRS if (root / d).is_dir()), None)
    return (images, labels) if images and labels else None


def _images_dir(root: Path) -> Path | None:
    return next((root / d for d in IMAGE_DIRS if (root / d).is_dir()), None)


def _labels_dir(root: Path, fmt: str) -> Path | None:
    """The layout's labels folder (None: a manifest, or images/ whose labels are only the raters' folders)."""
    if fmt in ("msd", "nnunet"):
        return root / "labelsTr"
    pair = _pair_dirs(root) if fmt == "folders" else None
    return None if pair is None else pair[1]


def _open_images(root: Path) -> Dataset:
    """images/ with no labels folder: the cases, to be labelled by their raters' folders."""
    images = files_by_stem(visible_entries(_images_dir(root)))
    return Dataset(root, "folders", tuple(Case(stem, (images[stem],)) for stem in sorted(images, key=_natural_key)))


def _open_folders(root: Path) -> Dataset:
    pair = _pair_dirs(root)
    if pair is None:
        raise DataError(f"{root}: expected images/ and labels/ folders.")
    images_dir, labels_dir = pair
    for folder in (p for p in visible_entries(images_dir) if p.is_dir()):
        if problem := folder_problem(folder):  # a sub-folder of pictures is no case: say so, not "no label"
            raise DataError(f"{folder}: {problem}")
    images = files_by_stem(visible_entries(images_dir))
    labels = pair_by_name(images, files_by_stem(visible_entries(labels_dir)), labels_dir)
    roi_dirs = [root / d for d in ROI_DIRS if (root / d).is_dir()]
    if len(roi_dirs) > 1:
        raise DataError(f"{root}: {' and '.join(d.name + '/' for d in roi_dirs)} each hold regions of interest, but a "
                        "case has one region; keep one folder, or combine each image's masks into one (e.g. their "
                        "intersection) in it.")
    roi_dir = roi_dirs[0] if roi_dirs else None
    rois = pair_by_name(images, files_by_stem(visible_entries(roi_dir)), roi_dir, "ROI") if roi_dir else {}
    cases = tuple(Case(stem, (images[stem],), labels[stem], roi_path=rois.get(stem))
                  for stem in sorted(images, key=_natural_key))
    return Dataset(root, "folders", cases)


def _open_csv(path: Path) -> Dataset:
    return Dataset(path, "csv", tuple(open_manifest(path)))


def _with_channels(dataset: Dataset, colour: bool) -> Dataset:
    """A one-file-per-case dataset whose first image is a colour photograph has its R, G, B
    channels, or (``colour`` false) the one channel ``luminance``."""
    if dataset.cases and image_suffix(dataset.cases[0].image_paths[0]) in TWO_D_SUFFIXES \
            and read_image(dataset.cases[0].image_paths[0], colour=True).colour:
        return replace(dataset, channel_names=COLOUR_CHANNELS if colour else (LUMINANCE,), channels_in_one_file=True)
    return dataset


def files_by_stem(files: list[Path]) -> dict[str, Path]:
    """File name without extension -> file; two files of one name (``a.nii.gz``, ``a.mha``) are an error."""
    found: dict[str, Path] = {}
    for f in files:
        stem = strip_suffix(f)
        if stem in found:
            raise DataError(f"{found[stem]} and {f.name} are both named '{stem}', so it is unclear which is the "
                            "case; keep one of them.")
        found[stem] = f
    return found


def _natural_key(text: str) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text))


def _read_groups(root: Path, case_ids: set[str]) -> tuple[dict[str, str], dict[str, str]]:
    """Optional ``groups.csv`` (columns ``case,group[,site]``): cases of one patient share a group;
    ``site`` (scanner, hospital) gives per-site scores."""
    path = root / "groups.csv"
    if not path.is_file():
        return {}, {}
    groups: dict[str, str] = {}
    sites: dict[str, str] = {}
    for line, row in read_csv_rows(path, ("case", "group")):
        if (row.get("site") or "").strip():
            sites[(row["case"] or "").strip()] = row["site"].strip()
        case, group = (row["case"] or "").strip(), (row["group"] or "").strip()
        if not group:
            raise DataError(f"{path} line {line}: case '{case}' has an empty group.")
        if groups.get(case, group) != group:
            raise DataError(f"{path} line {line}: case '{case}' is in group '{groups[case]}' and in '{group}'; give "
                            "each case one group.")
        groups[case] = group
    unknown = sorted(set(groups) - case_ids)
    if unknown:
        raise DataError(f"{path}: case(s) {unknown[:5]} are not in the dataset.")
    missing = sorted(case_ids - set(groups))
    if missing:
        raise DataError(f"{path}: case(s) {missing[:5]} have no group; give every case a group.")
    return groups, sites
