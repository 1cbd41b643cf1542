"""What Pillow knows of a 2D picture (PNG, JPEG, TIFF, BMP) that SimpleITK's reader ignores.

SimpleITK reads the pixels, but not the EXIF orientation a camera records (viewers turn the
picture by it; a model must too), not a palette PNG's indices (it expands them to colours), not
a grey picture with transparency (mode ``LA``: "Unknown PixelType"), and it cannot tell the
three planes of a TIFF stored apart from the R, G and B of a photograph. Pillow reads the header
alone on opening, so asking costs little.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from automed.errors import DataError

__all__ = ["Picture", "inspect_picture", "orient", "orientation_note", "palette_indices", "read_grey_alpha"]

_ORIENTATION = 0x0112  # EXIF tag
_PLANAR_CONFIGURATION = 284  # TIFF tag: 1 interleaved (R G B R G B ...), 2 one plane per sample
_ORIENTATION_NAMES = {2: "mirrored", 3: "turned 180 degrees", 4: "flipped upside down",
                      5: "mirrored and turned 90 degrees", 6: "turned 90 degrees clockwise",
                      7: "mirrored and turned 90 degrees", 8: "turned 90 degrees counter-clockwise"}


@dataclass(frozen=True)
class Picture:
    """A 2D picture's header as Pillow reads it: its mode (``"L"``, ``"P"``, ``"LA"``, ``"RGB"``,
    ...), number of pages, EXIF orientation (1: as stored) and whether a TIFF stores its 3
    samples as separate planes."""

    mode: str
    n_frames: int = 1
    orientation: int = 1
    planar: bool = False


def inspect_picture(path: Path) -> Picture | None:
    """The header of the picture at ``path``, or None when Pillow cannot open it (SimpleITK then
    says what is wrong)."""
    import warnings

    from PIL import Image as PILImage, UnidentifiedImageError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow's warnings on corrupt tags: SimpleITK says what is wrong
        try:
            with PILImage.open(path) as picture:
                orientation = picture.getexif().get(_ORIENTATION, 1)
                tags = getattr(picture, "tag_v2", {})
                planar = tags.get(_PLANAR_CONFIGURATION) == 2 and len(picture.getbands()) >= 3
                return Picture(picture.mode, int(getattr(picture, "n_frames", 1)),
                               orientation if orientation in _ORIENTATION_NAMES else 1, planar)
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, TypeError, PILImage.DecompressionBombError):
            return None  # a header claiming more pixels than Pillow's bomb limit is refused by the header check


def orient(array: np.ndarray, orientation: int) -> np.ndarray:
    """``array`` (``(y, x)`` or ``(y, x, channels)``) turned as a viewer shows a picture of that EXIF
    ``orientation``; Pillow's :func:`PIL.ImageOps.exif_transpose` decides the turn, applied to
    the pixels' indices so that any dtype and number of channels follows it."""
    from PIL import Image as PILImage, ImageOps

    if orientation == 1:
        return array
    height, width = array.shape[:2]
    index = PILImage.fromarray(np.arange(height * width, dtype=np.int32).reshape(height, width))
    exif = PILImage.Exif()
    exif[_ORIENTATION] = orientation
    index.info["exif"] = exif.tobytes()
    turned = np.asarray(ImageOps.exif_transpose(index))
    return array.reshape(height * width, *array.shape[2:])[turned]


def orientation_note(path: Path, orientation: int) -> str:
    """What :func:`orient` did, for the warnings."""
    return (f"{path}: {_ORIENTATION_NAMES.get(orientation, 'turned')} as its EXIF orientation ({orientation}) "
            "says, as image viewers show it.")


def palette_indices(path: Path) -> np.ndarray:
    """The palette indices of a palette (mode ``P``) picture: a mask's class values."""
    from PIL import Image as PILImage

    with PILImage.open(path) as picture:
        return np.asarray(picture)


def read_grey_alpha(path: Path) -> tuple[np.ndarray, str]:
    """The grey values of a grey picture with transparency (mode ``LA``), and a note that its alpha
    was dropped.

    Raises
    ------
    DataError
        If its transparency varies: what the transparent pixels hold is then unknown.
    """
    from PIL import Image as PILImage

    with PILImage.open(path) as picture:
        pixels = np.asarray(picture.convert("LA"))
    grey, alpha = pixels[..., 0], pixels[..., 1]
    if alpha.min() != alpha.max():
        raise DataError(f"{path}: a grey picture with an alpha (transparency) channel that varies from {alpha.min()} "
                        f"to {alpha.max()}, so what its transparent pixels hold is unknown; save it without alpha "
                        "(e.g. Pillow's Image.convert('L')) after filling the transparent part as you mean it.")
    return grey, f"{path}: a grey picture with a uniform alpha (transparency) channel; read as grey, alpha dropped."
