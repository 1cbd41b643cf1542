"""Masks as photographs store them: JPEG compression leaves grey pixels around a binary mask.

A 2D mask (PNG, JPEG, BMP, TIFF, GIF) whose pixels are nearly all near its lowest or highest
value is binary with compression noise: it is thresholded halfway, and the warning says how
many pixels changed. One whose pixels spread over many grey levels is not a mask at all
(an image saved by mistake, a soft probability map) and is an error. Volumes, and 2D masks
with few values (class indices 0, 1, 2, ...), are taken as they are.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from automed.data.io import TWO_D_SUFFIXES, Image, image_suffix, read_image
from automed.errors import DataError

__all__ = ["MAX_GREY_SHARE", "clean_mask", "read_mask"]

#: Share of a near-binary mask's pixels that may lie far (over 1/8 of the range) from both extreme
#: values: at most 0.5% in the 100 Kvasir-SEG JPEG masks, 87% in one of its photographs.
MAX_GREY_SHARE = 0.05
#: A 2D mask with more distinct values than this is checked for compression noise.
MAX_CLASS_VALUES = 16


def read_mask(path: Path) -> Image:
    """The class values of the mask file ``path``, read as an image viewer shows it (see
    :func:`automed.data.io.read_image`). A palette picture (PNG or GIF in mode ``P``) whose palette
    holds colours gives its palette indices as the class values.

    Raises
    ------
    DataError
        An RGB colour mask (colours rather than class values), or what :func:`read_image` raises.
    """
    from automed.data.pictures import inspect_picture, orient, palette_indices

    image = read_image(path, colour=True)
    if not image.colour:
        return image
    picture = inspect_picture(path)
    if picture is not None and picture.mode == "P" and picture.n_frames == 1:
        indices = orient(palette_indices(path), picture.orientation)
        note = (f"{path}: a palette mask whose palette holds colours; its palette indices "
                f"{np.unique(indices).tolist()[:8]} are read as the class values.")
        return Image(indices, image.geometry, notes=(*image.notes, note))
    colours = np.unique(image.array.reshape(3, -1).T, axis=0)
    if len(colours) > MAX_CLASS_VALUES:
        raise DataError(f"{path}: a colour picture of {len(colours)} colours, not a mask; a mask holds class values "
                        "(0 and 255, or 0, 1, 2, ...) in a grey or palette file.")
    shown = ", ".join(str(tuple(int(v) for v in c)) for c in colours[:4]) + (", ..." if len(colours) > 4 else "")
    raise DataError(f"{path}: an RGB colour mask (colours {shown}), but a mask holds class values; replace each "
                    "colour by its class number (0 for background, 1, 2, ...) and save the numbers as a grey PNG "
                    "(or as a palette PNG, whose indices are read as the classes).")


def clean_mask(label: np.ndarray, path: Path) -> tuple[np.ndarray, str | None]:
    """The mask in ``path`` as class values, and a warning when it was thresholded.

    Raises
    ------
    DataError
        If a 2D mask holds many grey levels rather than class values.
    """
    if image_suffix(path) not in TWO_D_SUFFIXES:
        return label, None
    values = np.unique(label)
    if len(values) <= MAX_CLASS_VALUES:
        return label, None
    low, high = values[0], values[-1]
    margin = (float(high) - float(low)) / 8
    grey = float(((label > low + margin) & (label < high - margin)).mean())
    if grey > MAX_GREY_SHARE:
        raise DataError(f"{path}: mask holds {len(values)} grey levels, {grey:.0%} of its pixels far from both its "
                        f"lowest ({low}) and highest ({high}) value; a mask must hold class values (0 and 255, or 0, "
                        "1, 2, ...), not an image or a probability map.")
    cut = (float(low) + float(high)) / 2
    top = 255 if high <= 255 else high  # one foreground value in every file, whatever noise its maximum has
    binary = np.where(label > cut, top, 0).astype(label.dtype)
    changed = int((binary != label).sum())
    return binary, (f"{path}: mask is binary with compression noise; thresholded at {cut:g} to 0 and {top}, "
                    f"which changed {changed} pixel(s) ({changed / label.size:.1%}).")
