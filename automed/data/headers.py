"""Check an image file's header before its pixels are read.

ITK refuses a zero or NaN spacing and a size beyond memory only once it reads the pixels, and
then names a line of its own source (``itkImageBase.hxx:77``) rather than the field at fault.
SimpleITK's ``ImageFileReader.ReadImageInformation`` reads the header alone, so the size, the
pixel type and the spacing are checked here first, and each problem names the header field that
holds it (``ElementSpacing`` of a MetaImage, ``pixdim`` of a NIfTI, ...).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from automed.errors import DataError

__all__ = ["HEADER_FIELDS", "read_checked_header", "itk_reason"]

#: The header fields that hold the size and the spacing, by file extension, to name them in errors.
HEADER_FIELDS = {
    ".mhd": ("DimSize", "ElementSpacing"), ".mha": ("DimSize", "ElementSpacing"),
    ".nii": ("dim", "pixdim"), ".nii.gz": ("dim", "pixdim"),
    ".nrrd": ("sizes", "space directions"), ".nhdr": ("sizes", "space directions"),
}
#: Extensions whose spacing is not checked: a picture's comes from its dots per inch and is not used.
_PICTURES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")


def read_checked_header(path: Path) -> object:
    """A SimpleITK ``ImageFileReader`` for ``path`` whose header has been read and checked; its
    ``Execute()`` then reads the pixels.

    Raises
    ------
    DataError
        A size with an axis of 0 voxels, a pixel buffer larger than the memory available,
        a spacing of zero, NaN or Inf, or a MetaImage whose pixel data file is missing.
    RuntimeError
        SimpleITK cannot read the header at all (the caller names the file).
    """
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    suffix = next((s for s in (*HEADER_FIELDS, *_PICTURES) if path.name.lower().endswith(s)), "")
    size_field, spacing_field = HEADER_FIELDS.get(suffix, ("size", "spacing"))
    meta = _metaimage_fields(path) if suffix in (".mhd", ".mha") else {}
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        if "Unknown PixelType" in str(exc) and "ElementType" in meta:
            raise DataError(f"{path}: its header's ElementType = {meta['ElementType']} is not a pixel type SimpleITK "
                            "reads (MET_UCHAR, MET_SHORT, MET_FLOAT, ...); correct ElementType.") from exc
        raise
    size = tuple(int(n) for n in reader.GetSize())
    said = f"{size_field} = {meta[size_field]}" if size_field in meta else f"{size_field} {size}"
    if 0 in size:
        raise DataError(f"{path}: its header's {said} has an axis of 0 voxels, so the image is empty; the header "
                        "is corrupt: export the image again.")
    itemsize = sitk.GetArrayViewFromImage(sitk.Image([1] * len(size), reader.GetPixelID(),
                                                     reader.GetNumberOfComponents())).itemsize
    n_bytes = math.prod(size) * reader.GetNumberOfComponents() * itemsize
    available = _available_bytes()
    if n_bytes > available:
        raise DataError(f"{path}: its header's {said} announces {n_bytes / 2**30:,.0f} GiB of pixels, more than the "
                        f"{available / 2**30:.3g} GiB of memory available; if the header is right, crop or "
                        "downsample the image first, else export it again.")
    spacing = np.asarray(reader.GetSpacing(), dtype=float)
    if suffix not in _PICTURES and (not np.isfinite(spacing).all() or (spacing == 0).any()):
        said = f"{spacing_field} = {meta[spacing_field]}" if spacing_field in meta else \
            f"{spacing_field} {tuple(spacing.tolist())}"
        raise DataError(f"{path}: its header's {said} is not a voxel size (a spacing of zero, NaN or Inf); set "
                        f"the real spacing in millimetres in the header (e.g. with SimpleITK's SetSpacing).")
    data_file = meta.get("ElementDataFile", "LOCAL")
    if data_file.upper() not in ("LOCAL", "LIST") and "%" not in data_file and not (path.parent / data_file).is_file():
        raise DataError(f"{path}: its header's ElementDataFile = {data_file} names a pixel data file that is not "
                        f"in {path.parent}; copy it beside the header or correct ElementDataFile.")
    return reader


def _available_bytes() -> int:
    import psutil

    return int(psutil.virtual_memory().available)


def _metaimage_fields(path: Path) -> dict[str, str]:
    """The ``Key = value`` lines of a MetaImage header, up to ``ElementDataFile`` (the last one).

    SimpleITK exposes neither the text of a field nor ``ElementDataFile``, and a message that
    quotes the field as the user sees it (``ElementSpacing = nan 1 1``) is the clearest; the
    format is one ``Key = value`` per line, so it is read here rather than with a library.
    """
    fields: dict[str, str] = {}
    with path.open("rb") as handle:
        for raw in handle:
            key, sep, value = raw.decode("latin-1").partition("=")
            if not sep:
                break
            fields[key.strip()] = value.strip()
            if key.strip() == "ElementDataFile" or len(fields) > 64:
                break
    return fields


def itk_reason(exc: RuntimeError) -> str:
    """The sentence of a SimpleITK error that says what is wrong, without its source-file line and
    object address (``Exception thrown in ... itkImageBase.hxx:77:``, ``ITK ERROR: Image(0x...):``)."""
    import re

    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    kept = [re.sub(r"^(ITK ERROR: \w+\(0x[0-9a-f]+\):|sitk::ERROR:)\s*", "", line) for line in lines
            if not line.startswith("Exception thrown in")]
    return " ".join(kept)[:200] or (lines[-1][:200] if lines else "")
