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
from automed.data.pictures import Picture
from automed.errors import DataError

__all__ = ["COLOUR_CHANNELS", "LUMINANCE", "SITE_TAGS", "Geometry", "Image", "describe_folder", "dicom_site",
           "folder_problem", "image_suffix", "mask_suffix", "read_image", "series_files", "strip_suffix", "write_image"]

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
    #: What was done while reading, for the warnings (e.g. turned by its EXIF orientation).
    notes: tuple[str, ...] = ()


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
    """Read one image file or DICOM series folder, as an image viewer shows it.

    A 2D file with colour pixels becomes luminance, or with ``colour`` its R, G and B
    channels (alpha dropped); one whose channels are all equal is grey either way. A picture is
    turned as its EXIF orientation says, a grey one with a uniform transparency read as grey,
    and a TIFF's pages read as the slices of a volume (:mod:`automed.data.pictures`); a header is
    checked before the pixels are read (:mod:`automed.data.headers`). ``notes`` says what was done.

    Raises
    ------
    DataError
        If the path is missing (or a broken or looping link), empty (0 bytes), a folder that holds
        no DICOM series (saying what it holds), a header that announces no readable image, or a
        file that cannot be decoded.
    """
    import SimpleITK as sitk

    from automed.data.headers import itk_reason, read_checked_header
    from automed.data.pictures import inspect_picture, orient, orientation_note, read_grey_alpha

    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: {_missing(path)}")
    suffix = image_suffix(path)
    picture = inspect_picture(path) if path.is_file() and suffix in TWO_D_SUFFIXES and suffix != ".gif" else None
    notes: list[str] = []
    try:
        if path.is_dir():
            image = _read_series(path)
        else:
            if path.stat().st_size == 0:
                raise DataError(f"{path}: file is empty (0 bytes).")
            check_complete(path)
            if suffix == ".gif":
                image = _read_gif(path)
            elif picture is not None and picture.mode in ("LA", "La"):  # ITK: "Unknown PixelType"
                grey, note = read_grey_alpha(path)
                image, notes = sitk.GetImageFromArray(grey), [note]
            else:
                image = read_checked_header(path).Execute()
    except RuntimeError as exc:
        raise DataError(f"{path}: cannot be read as an image ({itk_reason(exc)}).") from exc
    if picture is not None:
        notes.extend(_pages_note(path, picture))
    array = sitk.GetArrayFromImage(image)
    geometry = Geometry(tuple(image.GetSpacing()), tuple(image.GetOrigin()), tuple(image.GetDirection()))
    if picture is not None and picture.orientation != 1 and image.GetDimension() == 2:
        array = orient(array, picture.orientation)
        notes.append(orientation_note(path, picture.orientation))
        if picture.orientation >= 5:  # turned by 90 degrees: x and y swap
            geometry = Geometry(geometry.spacing[::-1], geometry.origin, geometry.direction)
    if image.GetNumberOfComponentsPerPixel() > 1 and image_suffix(path) in TWO_D_SUFFIXES:
        rgb = array[..., :3]
        if rgb.dtype.itemsize > 1 and rgb.dtype.kind == "u":  # a 16-bit photograph on the 0-255 scale of 8-bit
            rgb = rgb * np.float32(255 / np.iinfo(rgb.dtype).max)  # ones, so a dataset mixing both reads alike
        if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
            return Image(array[..., 0], geometry, notes=tuple(notes))
        if colour:
            return Image(np.moveaxis(rgb, -1, 0), geometry, colour=True, notes=tuple(notes))
        return Image(rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32), geometry,
                     notes=tuple(notes))
    return Image(array, geometry, notes=tuple(notes))


def _missing(path: Path) -> str:
    """Why ``path``, which does not exist, is missing: a broken or looping link, or not there."""
    import errno
    import os

    if not path.is_symlink():
        return "file not found."
    try:
        path.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symbolic link that leads back to itself (a loop), not an image; point it at the image or remove it."
    return f"a symbolic link to {os.readlink(path)}, which does not exist; point it at the image or remove it."


def series_files(folder: Path) -> tuple[str, ...]:
    """The files of the DICOM series in ``folder``, in slice order.

    Raises
    ------
    DataError
        If GDCM finds no series there, saying what the folder holds instead (:func:`describe_folder`).
    """
    import SimpleITK as sitk

    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder))
    if not files:
        raise DataError(f"{folder}: {describe_folder(folder)}")
    return tuple(files)


SITE_TAGS = (("0008|0080",), ("0008|0070", "0008|1090"))
"""Where a DICOM series says its site: the institution's name, else the scanner's manufacturer and model."""


def dicom_site(folder: Path) -> str | None:
    """The site the DICOM series in ``folder`` names in its first file's header (:data:`SITE_TAGS`); None when its
    header names none."""
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(series_files(folder)[0])
    reader.ReadImageInformation()
    for tags in SITE_TAGS:
        found = [reader.GetMetaData(t).strip() for t in tags if reader.HasMetaDataKey(t)]
        if any(found):
            return " ".join(v for v in found if v)
    return None


def _read_series(folder: Path) -> object:
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(series_files(folder))
    return reader.Execute()


def folder_problem(folder: Path) -> str | None:
    """Why ``folder``, given where one image is expected, cannot be a DICOM series, judged by its
    listing alone (a loop, nothing in it, pictures or only sub-folders), or None when its files may
    be DICOM (GDCM then decides on reading)."""
    entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    maybe_dicom = any(p.is_file() and image_suffix(p) in ("", ".dcm") for p in entries)
    looped = folder.is_symlink() and folder.resolve() in (folder.parent.resolve(), *folder.parent.resolve().parents)
    return describe_folder(folder) if looped or not maybe_dicom else None


def describe_folder(folder: Path) -> str:
    """What the folder ``folder``, given where one image is expected, holds instead of a DICOM
    series, and what to give instead (a clause to follow ``folder: ``)."""
    real, parent = folder.resolve(), folder.parent.resolve()
    if folder.is_symlink() and real in (parent, *parent.parents):
        return (f"a link back to {real}, a folder that holds it (a loop), not an image or a DICOM series; remove the "
                "link.")
    entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    pictures = [p for p in entries if p.is_file() and image_suffix(p) not in ("", ".dcm")]
    if pictures:
        kinds = "/".join(sorted({image_suffix(p).lstrip(".").upper() for p in pictures}))
        return (f"a folder of {len(pictures)} {kinds} image(s), not one image or a DICOM series; give its images one "
                "by one (a folder of images is read as a whole dataset, or as the DATA of predict, not as one image).")
    if any(image_suffix(p) == ".dcm" for p in entries):
        return (f"a folder of {sum(image_suffix(p) == '.dcm' for p in entries)} .dcm file(s) in which GDCM finds no "
                "DICOM series (they are not DICOM, or lack their series information); check them in a DICOM viewer.")
    if (folders := [p for p in entries if p.is_dir()]):
        return (f"a folder of {len(folders)} sub-folder(s) (e.g. {folders[0].name}) and no image, not one image or a "
                "DICOM series; give the image files themselves.")
    if entries:
        return (f"a folder of {len(entries)} file(s), none of them an image or a DICOM file (e.g. {entries[0].name}), "
                "not an image or a DICOM series.")
    return "an empty folder, not an image or a DICOM series."


def _pages_note(path: Path, picture: Picture) -> list[str]:
    """A note on a TIFF's pages read as slices; a TIFF whose 3 planes may be colours or slices is an error."""
    if picture.planar and picture.n_frames == 1:
        raise DataError(f"{path}: a TIFF whose 3 planes are stored apart (PlanarConfiguration 2) and marked as the R, "
                        "G and B of a colour picture, which is also how tifffile writes a (3, height, width) array of "
                        "3 grey slices, so it is unclear which it is; save a photograph with interleaved colour (e.g. "
                        "with Pillow) and slices with tifffile.imwrite(path, array, photometric='minisblack').")
    if picture.n_frames > 1:
        return [f"{path}: its {picture.n_frames} pages are read as the {picture.n_frames} slices of a volume."]
    return []


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


def mask_suffix(source: Path) -> str:
    """The extension a mask predicted for the image or label file ``source`` is written with: the
    source's own where SimpleITK writes it as one lossless file, else the nearest that is (a GIF,
    which ITK cannot write, and a JPEG, whose lossy compression would change label values, as PNG;
    a MetaImage or NRRD header with a separate data file as the one-file ``.mha``/``.nrrd``; a DICOM
    file or series folder as NIfTI)."""
    suffix = image_suffix(source) if source.is_file() else ""
    return _WRITTEN_AS.get(suffix, suffix) or ".nii.gz"


_WRITTEN_AS = {".gif": ".png", ".jpg": ".png", ".jpeg": ".png", ".mhd": ".mha", ".nhdr": ".nrrd", ".dcm": ".nii.gz"}
"""Image extensions a mask cannot be written with, and the one it is written with instead (see mask_suffix)."""


def write_image(array: np.ndarray, geometry: Geometry, path: str | Path) -> None:
    """Write ``array`` with ``geometry`` to ``path``, atomically and checked (temporary file, then rename;
    see :func:`automed.data.atomic.file_written_atomically`).

    Raises
    ------
    WriteError
        The file could not be written whole (a full or read-only disk, a format SimpleITK cannot write);
        nothing is left at ``path``.
    """
    import SimpleITK as sitk

    from automed.data.atomic import file_written_atomically, write_failure

    path = Path(path)
    image = sitk.GetImageFromArray(array)
    if image.GetDimension() == len(geometry.spacing):
        image.SetSpacing(geometry.spacing)
        image.SetOrigin(geometry.origin)
        image.SetDirection(geometry.direction)
    suffix = image_suffix(path) or path.suffix
    # SimpleITK's NIfTI writer carries on silently when the disk fills: not trusted, so checked after
    with file_written_atomically(path, trusted=False) as tmp:
        try:
            sitk.WriteImage(image, str(tmp), useCompression=suffix in (".nii.gz", ".nrrd", ".mha"))
        except RuntimeError as exc:
            raise write_failure(exc, path) from exc
