"""Load a case's image channels and label as arrays, checking everything that can be wrong."""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from automed.data.case import Case
from automed.data.io import Geometry, read_image
from automed.data.masks import clean_mask, read_mask
from automed.data.resample import grid_shape, resample_image, resample_labels, resampled_geometry
from automed.errors import DataError

__all__ = ["LoadedCase", "load_case", "load_image_channels", "on_grid"]


@dataclass(frozen=True)
class LoadedCase:
    """Arrays of one case: ``image`` is ``(n_channels, *spatial)`` float32, ``label`` raw values
    (background outside the ``roi``, a bool mask, when the case has one)."""

    case: Case
    image: np.ndarray
    label: np.ndarray | None
    geometry: Geometry
    #: What was corrected while reading (e.g. a JPEG mask thresholded); the fingerprint warns of it.
    notes: tuple[str, ...] = ()
    roi: np.ndarray | None = None


def load_image_channels(case: Case, n_channels: int, channels_in_one_file: bool = False) -> tuple[np.ndarray, Geometry]:
    """Read and check a case's channels; return ``(n_channels, *spatial)`` float32 and geometry.

    ``channels_in_one_file``: the channels are stored in one file, as a 4th axis (MSD) or
    as the colour of a photograph (with ``n_channels`` 1: the photograph's luminance).

    Raises
    ------
    DataError
        Unreadable file, NaN/Inf values, a 4D image where 3D is expected, channels
        that disagree in shape or geometry, or not ``n_channels`` of them.
    """
    stacked, geometry, _ = _read_channels(case, n_channels, channels_in_one_file)
    return stacked, geometry


def _read_channels(case: Case, n_channels: int, channels_in_one_file: bool) -> tuple[np.ndarray, Geometry, tuple[str, ...]]:
    """:func:`load_image_channels`, and what was done while reading the files (their notes)."""
    arrays, geometry, notes = [], None, ()
    for path in case.image_paths:
        image = read_image(path, colour=not (channels_in_one_file and n_channels == 1))
        notes += image.notes
        if image.colour and not channels_in_one_file:
            raise DataError(f"{path}: a colour (RGB) image, but {n_channels} grey channel(s) are expected (those "
                            "of the dataset's first case, or of the images the run was fitted on).")
        if image.colour:  # a colour photograph: its R, G and B channels
            arrays.extend(image.array)
            geometry = image.geometry
            continue
        array = image.array
        n_spatial = len(image.geometry.spacing)
        if channels_in_one_file and n_spatial == 4 and array.shape[0] == n_channels:
            arrays.extend(array)  # MSD stores channels as a 4th (first in numpy) axis
            geometry = Geometry(image.geometry.spacing[:3], image.geometry.origin[:3],
                                _direction_3d(image.geometry.direction))
            continue
        if n_spatial > 3 or array.ndim > 3:
            raise DataError(
                f"{path}: image is {array.ndim}D with shape {array.shape} but a 2D or 3D image was "
                f"expected; store each channel as its own file (nnU-Net layout CASE_0000, CASE_0001, ...)."
            )
        if geometry is not None and array.shape != arrays[0].shape:
            raise DataError(f"{path}: shape {array.shape} does not match channel 0 shape {arrays[0].shape}.")
        if geometry is not None and (problem := geometry.mismatch(image.geometry)):
            raise DataError(f"{path}: {problem.replace('image', 'channel 0')}.")
        geometry = geometry or image.geometry
        arrays.append(array)
    if len(arrays) != n_channels:
        kind = {1: "a grey image", 3: "a colour (RGB) image"}.get(len(arrays), f"{len(arrays)} channels")
        raise DataError(f"{case.image_paths[0]}: {kind}, but {n_channels} channel(s) are expected "
                        f"(those of the dataset's first case, or of the images the run was fitted on).")
    stacked = np.stack(arrays).astype(np.float32, copy=False)
    if not np.isfinite(stacked).all():
        n_bad = int((~np.isfinite(stacked)).sum())
        raise DataError(f"{case.image_paths[0]}: image holds {n_bad} NaN or Inf value(s); fix or mask them first.")
    return stacked, geometry, notes


def _read_as(notes: tuple[str, ...]) -> str:
    """How the image was read, when that explains a shape its mask does not share (a picture turned by its
    EXIF orientation, a TIFF's pages read as slices)."""
    said = [n.split(": ", 1)[1].rstrip(".") for n in notes if "EXIF" in n or "pages" in n]
    return f" (as read: {'; '.join(said)})" if said else ""


def _direction_3d(direction: tuple[float, ...]) -> tuple[float, ...]:
    d = np.asarray(direction).reshape(4, 4)[:3, :3]
    return tuple(d.ravel())


def load_case(case: Case, n_channels: int, channels_in_one_file: bool = False,
              target_spacing: tuple[float, ...] | None = None) -> LoadedCase:
    """Read a labelled case and check the label against the image.

    With a region of interest, the label outside it becomes background: nothing is learnt or
    scored there (the rungs predict background outside it too). With a ``target_spacing``
    (array axis order), the case is resampled onto that grid (:mod:`automed.data.resample`).

    Raises
    ------
    DataError
        Any image problem (see :func:`load_image_channels`), a label or ROI whose shape or
        geometry differs from the image, a label with non-integer values, an empty ROI.
    """
    image, geometry, notes = _read_channels(case, n_channels, channels_in_one_file)
    roi = None if case.roi_path is None else load_roi(case.roi_path, image.shape[1:], geometry)
    if not case.labelled:
        return on_grid(LoadedCase(case, image, None, geometry, notes, roi=roi), target_spacing)
    if case.raters:
        shared, more = _consensus(case.raters, case.consensus, image.shape[1:], geometry, notes)
        label, path, notes = shared.copy(), case.label_source, notes + more
    else:
        path = case.label_path
        label, more = _label(path, image.shape[1:], geometry, notes)
        notes += more
    if roi is not None and (outside := int(np.count_nonzero(label[~roi]))):
        notes += (f"{path}: {outside} labelled voxel(s) lie outside the ROI {case.roi_path.name} and are ignored.",)
    if roi is not None:
        label = np.where(roi, label, 0)
    return on_grid(LoadedCase(case, image, label.astype(np.int64, copy=False), geometry, notes, roi), target_spacing)


@lru_cache(maxsize=64)
def _consensus(raters: tuple[tuple[str, Path], ...], method: str, shape: tuple[int, ...], geometry: Geometry,
               notes: tuple[str, ...]) -> tuple[np.ndarray, tuple[str, ...]]:
    """The consensus label of the raters' masks (each checked as a label), kept for the next read of the case (STAPLE
    takes about 2 s for ten 1024 x 811 masks, and a fit reads a case many times)."""
    from automed.data.consensus import consensus_label

    masks, read = {}, ()
    for rater, path in raters:
        masks[rater], more = _label(path, shape, geometry, notes)
        read += more
    label = consensus_label(masks, method)
    label.flags.writeable = False  # shared by every later read
    return label, read


def _label(path: Path, shape: tuple[int, ...], geometry: Geometry, notes: tuple[str, ...]
           ) -> tuple[np.ndarray, tuple[str, ...]]:
    """The class values of the mask file ``path`` checked against the image (its ``shape`` and ``geometry``; ``notes``
    say how the image was read), and the notes of how the mask was read."""
    label_image = read_mask(path)
    label, note = clean_mask(label_image.array, path)
    if label.shape != shape:
        raise DataError(f"{path}: shape {label.shape} does not match image {shape}{_read_as(notes)}.")
    if problem := geometry.mismatch(label_image.geometry):
        raise DataError(f"{path}: {problem}; resample the label onto the image grid.")
    if not np.isfinite(label).all() or (label.dtype.kind == "f" and not np.equal(np.mod(label, 1), 0).all()):
        raise DataError(f"{path}: label holds non-integer values; labels must be integer class values.")
    if label.min() < 0:
        raise DataError(f"{path}: label holds negative values; labels must be integer class values >= 0.")
    return label, label_image.notes + (() if note is None else (note,))


def on_grid(loaded: LoadedCase, target_spacing: tuple[float, ...] | None) -> LoadedCase:
    """``loaded`` resampled to ``target_spacing`` (array axis order; None: as it is)."""
    if target_spacing is None:
        return loaded
    old = loaded.image.shape[1:]
    if len(target_spacing) != len(old):
        raise DataError(f"{loaded.case.image_paths[0]}: the recipe's target_spacing {list(target_spacing)} has "
                        f"{len(target_spacing)} value(s) but the image is {len(old)}D; give one per axis.")
    shape = grid_shape(old, loaded.geometry.spacing[::-1], target_spacing)
    if shape == old:
        return loaded
    return replace(loaded, image=resample_image(loaded.image, shape),
                   label=None if loaded.label is None else resample_labels(loaded.label, shape),
                   roi=None if loaded.roi is None else resample_labels(loaded.roi, shape),
                   geometry=resampled_geometry(loaded.geometry, old, shape))


def load_roi(path: Path, shape: tuple[int, ...], geometry: Geometry) -> np.ndarray:
    """A region-of-interest mask (non-zero inside; a JPEG one thresholded) checked against the image grid."""
    roi_image = read_mask(path)
    mask, _ = clean_mask(roi_image.array, path)
    if mask.shape != shape:
        raise DataError(f"{path}: ROI shape {mask.shape} does not match image {shape}.")
    if problem := geometry.mismatch(roi_image.geometry):
        raise DataError(f"{path}: ROI {problem}; resample it onto the image grid.")
    if not mask.any():
        raise DataError(f"{path}: ROI is empty; it must hold at least one voxel (or give the case no ROI).")
    return mask > 0
