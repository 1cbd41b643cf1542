"""Dataset fingerprint (as in nnU-Net): what the data look like, computed once per run.

The fingerprint drives intensity normalisation and the rungs' planning, and records
every problem found so that ``automed inspect`` can list them all at once.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from automed.data.dataset import Dataset
from automed.data.io import COLOUR_CHANNELS, LUMINANCE, TWO_D_SUFFIXES, image_suffix
from automed.data.loading import load_case
from automed.data.normalize import channel_scheme
from automed.errors import DataError

__all__ = ["Fingerprint", "scan_dataset", "compute_fingerprint"]

log = logging.getLogger(__name__)
N_INTENSITY_SAMPLES = 10_000  # foreground voxels sampled per case and channel


@dataclass(frozen=True)
class Fingerprint:
    """Summary of a dataset. Shapes and spacings are in array (numpy) axis order; a case's
    ``shape`` and ``spacing`` are on the working grid, ``native_shape`` and ``native_spacing``
    as stored."""

    n_cases: int
    dims: int
    n_channels: int
    channel_names: tuple[str, ...]
    modality: str
    normalization: str
    classes: dict[int, str]
    label_mapping: dict[int, int]
    class_voxel_fraction: dict[int, float]
    intensity: list[dict[str, float]]
    median_shape: tuple[int, ...]
    median_spacing: tuple[float, ...]
    cases: list[dict[str, Any]] = field(repr=False)
    empty_label_cases: tuple[str, ...] = ()
    #: The channels are stored in one file (MSD's 4th axis, a colour photograph), not one file each.
    channels_in_one_file: bool = False
    #: Cases with a region of interest (nothing is learnt or scored outside it).
    n_cases_with_roi: int = 0
    #: The working grid every case is resampled to (array axis order), or None: each case's own.
    target_spacing: tuple[float, ...] | None = None
    #: Why the working grid has that spacing.
    spacing_note: str = ""
    #: Each channel's normalisation (:func:`automed.data.normalize.channel_scheme`); empty in older
    #: runs, whose every channel follows ``normalization``.
    channel_normalization: tuple[str, ...] = ()

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (integer keys become strings)."""
        out = asdict(self)
        for key in ("classes", "label_mapping", "class_voxel_fraction"):
            out[key] = {str(k): v for k, v in out[key].items()}
        out["median_shape"] = list(self.median_shape)
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Fingerprint:
        """Inverse of :meth:`to_dict`."""
        values = dict(values)
        for key in ("classes", "label_mapping", "class_voxel_fraction"):
            values[key] = {int(k): v for k, v in values[key].items()}
        values["label_mapping"] = {k: int(v) for k, v in values["label_mapping"].items()}
        for key in ("channel_names", "median_shape", "median_spacing", "empty_label_cases", "channel_normalization"):
            values[key] = tuple(values[key])
        if values.get("target_spacing") is not None:
            values["target_spacing"] = tuple(values["target_spacing"])
        return cls(**values)


def scan_dataset(dataset: Dataset, random_state: int = 0, progress: bool = False,
                 target_spacing: str | tuple[float, ...] | None = "auto") -> tuple[Fingerprint | None, list[str], list[str]]:
    """Read every case, collecting problems instead of stopping at the first.

    ``target_spacing`` is the working grid's spacing (array axis order), ``"auto"`` to choose it
    from the cases' spacings (:func:`automed.data.spacing.choose_target_spacing`), or None to
    keep every case on its own grid. Cases are read and summarised as stored; their shapes on
    the working grid are computed, not resampled.

    Returns
    -------
    fingerprint : Fingerprint or None
        ``None`` when problems prevent a fingerprint.
    problems : list of str
        Errors, one sentence each naming the file.
    warnings : list of str
        Things that are allowed but suspicious (e.g. an all-background label).
    """
    from tqdm.auto import tqdm

    rng = np.random.default_rng(random_state)
    problems: list[str] = []
    warnings: list[str] = []
    records, samples, value_counts, notes = [], [], {}, []
    dims_seen: dict[int, str] = {}
    directions: dict[tuple[float, ...], str] = {}
    for case in tqdm(dataset.cases, desc="fingerprint", unit="case", disable=not progress):
        try:
            loaded = load_case(case, dataset.n_channels, dataset.channels_in_one_file)
        except DataError as exc:
            problems.append(str(exc))
            continue
        label, image = loaded.label, loaded.image
        notes.extend(loaded.notes)
        if min(label.shape) < 2:
            problems.append(f"{case.image_paths[0]}: shape {label.shape} has an axis of one voxel; every axis needs "
                            "at least 2 (a single-slice volume is a 2D image: store it as one).")
            continue
        values, counts = np.unique(label, return_counts=True)
        if dataset.classes is not None:
            undeclared = sorted(set(values.tolist()) - set(dataset.classes))
            if undeclared:
                problems.append(
                    f"{case.label_path}: label value(s) {undeclared} are not declared in dataset.json "
                    f"labels {sorted(dataset.classes)}."
                )
                continue
        dims_seen.setdefault(label.ndim, str(case.image_paths[0]))
        for v, c in zip(values.tolist(), counts.tolist()):
            value_counts[v] = value_counts.get(v, 0) + c
        spacing = tuple(float(s) for s in reversed(loaded.geometry.spacing))
        records.append({"case_id": case.case_id, "shape": list(label.shape), "spacing": list(spacing),
                        "label_values": {int(v): int(c) for v, c in zip(values, counts)}})
        directions.setdefault(tuple(np.round(loaded.geometry.direction, 3)), str(case.image_paths[0]))
        fg = label > 0 if (label > 0).any() else np.ones(label.shape, bool)
        index = np.flatnonzero(fg)
        index = rng.choice(index, min(N_INTENSITY_SAMPLES, index.size), replace=False)
        samples.append(image.reshape(image.shape[0], -1)[:, index])
    warnings.extend(notes if len(notes) <= 3 else [f"{len(notes)} notes on reading the files (masks were corrected while "
                                                    "reading, pictures turned by their EXIF orientation, ...), e.g. "
                                                    + " ".join(notes[:2])])
    if len(dims_seen) > 1:
        problems.append(
            "2D and 3D images are mixed: " + " vs ".join(f"{p} is {d}D" for d, p in sorted(dims_seen.items()))
            + "; split them into separate datasets."
        )
    if len(dims_seen) == 1 and _spacing_matters(dataset, target_spacing):
        problems.extend(_implausible_spacings(records, {c.case_id: c for c in dataset.cases}))
    if not problems and records:
        grid, spacing_note = _working_grid(records, target_spacing, dataset, problems, warnings)
    if len(directions) > 1:
        warnings.append("cases are stored in different orientations (e.g. " + " vs ".join(list(directions.values())[:2])
                        + "); automed learns in array axis order, so reorient them to one orientation first.")
    if problems or not records:
        return None, problems, warnings

    if len(value_counts) < 2:
        problems.append(f"{dataset.root}: every label holds the single value {sorted(value_counts)} "
                        f"({'all background' if 0 in value_counts else 'no background'}); nothing to segment.")
        return None, problems, warnings
    labelled = {case.case_id: case for case in dataset.cases}
    if dataset.classes is None and (mixed := _mixed_encodings(records, labelled)):
        problems.append(f"{dataset.root}: {mixed}")
        return None, problems, warnings
    mapping, classes = _label_mapping(dataset, value_counts)
    empty = []
    for rec in records:
        path = labelled[rec["case_id"]].label_source
        rec["class_voxels"] = {str(mapping[v]): c for v, c in rec.pop("label_values").items()}
        if set(rec["class_voxels"]) == {"0"}:
            empty.append(rec["case_id"])
            warnings.append(f"{path}: label is all background (allowed, but check it).")
        elif "0" not in rec["class_voxels"]:
            warnings.append(f"{path}: label is foreground everywhere, with no background voxel (allowed, but "
                            "check it: an inverted or blank mask reads this way).")
    total = sum(value_counts.values())
    fraction = {mapping[v]: c / total for v, c in sorted(value_counts.items())}
    stacked = np.concatenate(samples, axis=1)
    intensity = [
        {"mean": float(ch.mean()), "std": float(ch.std()), "p00_5": float(np.percentile(ch, 0.5)),
         "p99_5": float(np.percentile(ch, 99.5)), "min": float(ch.min()), "max": float(ch.max())}
        for ch in stacked
    ]
    photograph = dataset.channels_in_one_file and dataset.channel_names in (COLOUR_CHANNELS, (LUMINANCE,))
    modality = "CT" if any(n.upper() == "CT" for n in dataset.channel_names) else \
        "photograph" if photograph else dataset.channel_names[0]
    schemes = tuple(channel_scheme(n, photograph) for n in dataset.channel_names)
    fingerprint = Fingerprint(
        n_cases=len(records),
        dims=records[0]["shape"].__len__(),
        n_channels=dataset.n_channels,
        channel_names=dataset.channel_names,
        channels_in_one_file=dataset.channels_in_one_file,
        n_cases_with_roi=sum(c.roi_path is not None for c in dataset.cases),
        target_spacing=grid,
        spacing_note=spacing_note,
        modality=modality,
        normalization=schemes[0] if len(set(schemes)) == 1 else "per channel",
        channel_normalization=schemes,
        classes=classes,
        label_mapping=mapping,
        class_voxel_fraction=fraction,
        intensity=intensity,
        median_shape=tuple(int(v) for v in np.median([r["shape"] for r in records], axis=0)),
        median_spacing=tuple(float(v) for v in np.median([r["spacing"] for r in records], axis=0)),
        cases=records,
        empty_label_cases=tuple(empty),
    )
    return fingerprint, problems, warnings


def compute_fingerprint(dataset: Dataset, random_state: int = 0, progress: bool = False,
                        target_spacing: str | tuple[float, ...] | None = "auto") -> Fingerprint:
    """Fingerprint of ``dataset`` (see :func:`scan_dataset`); raises :class:`DataError` listing every
    problem found."""
    fingerprint, problems, warnings = scan_dataset(dataset, random_state, progress, target_spacing)
    for warning in warnings:
        log.warning(warning)
    if problems:
        more = f" (and {len(problems) - 1} more problem(s); run 'automed inspect' to list them)" if len(problems) > 1 else ""
        raise DataError(problems[0] + more)
    return fingerprint


def _spacing_matters(dataset: Dataset, target_spacing: str | tuple[float, ...] | None) -> bool:
    """Whether the cases' spacings are used: not for photographs on their own grids, whose spacing
    comes from their dots per inch."""
    photographs = all(image_suffix(p) in TWO_D_SUFFIXES for c in dataset.cases for p in c.image_paths)
    return not photographs or isinstance(target_spacing, tuple)


def _implausible_spacings(records: list[dict[str, Any]], cases: dict[str, Any]) -> list[str]:
    """One problem per case whose spacing no imaging device records or that is far from the
    median of the cases (:func:`automed.data.spacing.implausible_spacing`), in the file's axis order."""
    from automed.data.spacing import implausible_spacing

    stored = {rec["case_id"]: rec["spacing"][::-1] for rec in records}  # x-first, as the file's header
    median = np.median(list(stored.values()), axis=0) if stored else None
    found = []
    for case_id, spacing in stored.items():
        if reason := implausible_spacing(spacing, median):
            found.append(f"{cases[case_id].image_paths[0]}: {reason}; set its spacing in millimetres as the other "
                         "cases have it (a case saved in metres or micrometres reads so) or remove the case.")
    return found


def _working_grid(records: list[dict[str, Any]], target_spacing: str | tuple[float, ...] | None, dataset: Dataset,
                  problems: list[str], warnings: list[str]) -> tuple[tuple[float, ...] | None, str]:
    """The working grid's spacing and why, with each record's ``shape`` and ``spacing`` moved onto it
    (the stored ones kept as ``native_shape`` and ``native_spacing``)."""
    from automed.data.resample import grid_shape
    from automed.data.spacing import choose_target_spacing, spacing_spread

    if target_spacing == "auto" and all(image_suffix(p) in TWO_D_SUFFIXES for c in dataset.cases for p in c.image_paths):
        # nnU-Net too gives natural images a spacing of 1: a PNG's or JPEG's dots per inch say nothing of the anatomy
        return None, ("every case on its own grid: the spacing of PNG, JPEG, TIFF, BMP or GIF files comes from their "
                      "dots per inch (give target_spacing to resample them)")
    spacings = [r["spacing"] for r in records]
    if spread := spacing_spread(spacings):
        warnings.append(f"{dataset.root}: {spread}.")
    if target_spacing is None:
        return None, "every case on its own grid (the recipe's target_spacing is null)"
    if target_spacing == "auto":
        grid, note = choose_target_spacing(spacings, [r["shape"] for r in records])
    else:
        grid, note = tuple(target_spacing), "the recipe's target_spacing"
        if len(grid) != len(records[0]["shape"]):
            problems.append(f"{dataset.cases[0].image_paths[0]}: the recipe's target_spacing {list(grid)} has "
                            f"{len(grid)} value(s) but the image is {len(records[0]['shape'])}D; give one per axis.")
            return None, note
    for rec in records:
        rec["native_shape"], rec["native_spacing"] = rec["shape"], rec["spacing"]
        rec["shape"], rec["spacing"] = list(grid_shape(rec["shape"], rec["spacing"], grid)), list(grid)
        if min(rec["shape"]) < 2:
            problems.append(f"{next(c for c in dataset.cases if c.case_id == rec['case_id']).image_paths[0]}: on the "
                            f"working grid of spacing {list(grid)} the case shrinks from {rec['native_shape']} to "
                            f"{rec['shape']} voxels, below 2 on some axis; check its spacing {rec['native_spacing']} "
                            "(array axis order) or give a finer target_spacing.")
    return grid, note


def _mixed_encodings(records: list[dict[str, Any]], cases: dict[str, Any]) -> str | None:
    """The problem when binary masks store their foreground with different values (``{0, 1}`` in
    some files, ``{0, 255}`` in others), which would otherwise read as separate classes."""
    foreground: dict[int, list[str]] = {}
    for rec in records:
        values = [v for v in rec["label_values"] if v != 0]
        if len(values) > 1:
            return None  # a file with several classes: the values are class numbers
        if values:
            foreground.setdefault(values[0], []).append(str(cases[rec["case_id"]].label_source))
    if len(foreground) < 2:
        return None
    listed = "; ".join(f"value {v} in {paths[0]}" + (f" and {len(paths) - 1} more" if len(paths) > 1 else "")
                       for v, paths in sorted(foreground.items()))
    return (f"the masks disagree on the foreground value ({listed}): each file holds one foreground value, "
            "but not the same one; store every mask with the same values (e.g. all {0, 1}).")


def _label_mapping(dataset: Dataset, value_counts: dict[int, int]) -> tuple[dict[int, int], dict[int, str]]:
    """Raw label value -> class index, and class index -> name.

    Declared labels keep their names and are numbered consecutively. Undeclared values (plain folders) are mapped to
    consecutive classes in sorted order, e.g. binary masks stored as {0, 255} -> {0, 1}.
    """
    if dataset.classes is not None:
        declared = sorted(dataset.classes)
        return {v: i for i, v in enumerate(declared)}, {i: dataset.classes[v] for i, v in enumerate(declared)}
    values = sorted(value_counts)
    if 0 not in values:
        values = [0] + values
    mapping = {v: i for i, v in enumerate(values)}
    classes = {i: ("background" if v == 0 else f"label_{v}") for v, i in mapping.items()}
    return mapping, classes
