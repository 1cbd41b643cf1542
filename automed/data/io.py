"""Read and write medical images with their geometry, through SimpleITK.

SimpleITK reads NIfTI, NRRD, MHA/MHD, DICOM series and the common 2D formats
(PNG, TIFF, JPEG, BMP), so one reader serves every layout automed accepts; GIF, which
ITK has no reader for, is read with Pillow. Arrays use SimpleITK's axis order:
``(z, y, x)`` in 3D, ``(y, x)`` in 2D.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from automed.data.integrity import check_complete
from automed.errors import DataError

__all__ = ["COLOUR_CHANNELS", "LUMINANCE", "Geometry", "Image", "image_suffix", "read_image", "strip_suffix", "write_image"]

IMAGE_SUFFIXES = (
    ".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd",
    ".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp", ".gif", ".dcm",
)
TWO_D_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp", ".gif")
COLOUR_CHANNELS = ("R", "G", "B")
LUMINANCE = "luminance"  # the one channel of a colour photograph reduced to grey


@dataclass(frozen=True)
class Geometry:
    """Where an image lies in physical space (SimpleITK conventions, x-first)."""

    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: tuple[float, ...]

    def mismatch(self, other: Geometry, rtol: float = 1e-3, atol: float = 1e-3) -> str | None:
        """Name the first property that differs from ``other`` beyond tolerance, else None."""
        for name in ("spacing", "origin", "direction"):
            a, b = np.asarray(getattr(self, name)), np.asarray(getattr(other, name))
            if a.shape != b.shape or not np.allclose(a, b, rtol=rtol, atol=atol):
                return f"{name} {tuple(np.round(b, 4).tolist())} differs from image {tuple(np.round(a, 4).tolist())}"
        return None


@dataclass(frozen=True)
class Image:
    """A voxel array and its geometry; ``colour``: the array is ``(3, y, x)``, a colour photograph's
    R, G and B channels (read with ``colour=True``)."""

    array: np.ndarray
    geometry: Geometry
    colour: bool = False


def image_suffix(path: Path) -> str:
    """The image extension of ``path`` (``".nii.gz"`` counts as one); ``""`` for a folder."""
    name = path.name.lower()
    for suffix in IMAGE_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    return ""


def strip_suffix(path: Path) -> str:
    """File name without its image extension (``case_1.nii.gz`` -> ``case_1``)."""
    suffix = image_suffix(path)
    return path.name[: len(path.name) - len(suffix)] if suffix else path.name


def read_image(path: str | Path, colour: bool = False) -> Image:
    """Read one image file or DICOM series folder.

    A 2D file with colour pixels becomes luminance, or with ``colour`` its R, G and B
    channels (alpha dropped); one whose channels are all equal is grey either way.

    Raises
    ------
    DataError
        If the path is missing, empty (0 bytes), or cannot be decoded.
    """
    import SimpleITK as sitk

    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found.")
    try:
        if path.is_dir():
            files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(path))
            if not files:
                raise DataError(f"{path}: folder holds no DICOM series.")
            reader = sitk.ImageSeriesReader()
            reader.SetFileNames(files)
            image = reader.Execute()
        else:
            if path.stat().st_size == 0:
                raise DataError(f"{path}: file is empty (0 bytes).")
            check_complete(path)
            image = _read_gif(path) if image_suffix(path) == ".gif" else sitk.ReadImage(str(path))
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()
        detail = next((line for line in reason if "ERROR" in line or "Exception" in line), reason[-1] if reason else "")
        raise DataError(f"{path}: cannot be read as an image ({detail.strip()[:200]}).") from exc
    array = sitk.GetArrayFromImage(image)
    geometry = Geometry(tuple(image.GetSpacing()), tuple(image.GetOrigin()), tuple(image.GetDirection()))
    if image.GetNumberOfComponentsPerPixel() > 1 and image_suffix(path) in TWO_D_SUFFIXES:
        rgb = array[..., :3]
        if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
            return Image(array[..., 0], geometry)
        if colour:
            return Image(np.moveaxis(rgb, -1, 0), geometry, colour=True)
        return Image(rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32), geometry)
    return Image(array, geometry)


def _read_gif(path: Path) -> object:
    """The first frame of a GIF as a SimpleITK image (grey or RGB; ITK has no GIF reader)."""
    import SimpleITK as sitk
    from PIL import Image as PILImage, UnidentifiedImageError

    try:
        with PILImage.open(path) as gif:
            frame = gif.convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"{path}: cannot be read as a GIF image ({exc}).") from exc
    return sitk.GetImageFromArray(np.asarray(frame), isVector=True)


def write_image(array: np.ndarray, geometry: Geometry, path: str | Path) -> None:
    """Write ``array`` with ``geometry`` to ``path``, atomically (temp file then rename)."""
    import SimpleITK as sitk

    path = Path(path)
    image = sitk.GetImageFromArray(array)
    if image.GetDimension() == len(geometry.spacing):
        image.SetSpacing(geometry.spacing)
        image.SetOrigin(geometry.origin)
        image.SetDirection(geometry.direction)
    suffix = image_suffix(path) or path.suffix
    tmp = path.with_name(f".{path.name}.partial{suffix}")
    sitk.WriteImage(image, str(tmp), useCompression=suffix in (".nii.gz", ".nrrd", ".mha"))
    tmp.replace(path)
