"""Detect image files that are truncated or corrupt although their reader accepts them.

SimpleITK reads a NIfTI file whose gzip stream or voxel data stop half-way and fills
the rest with zeros; libjpeg pads a JPEG that ends early with grey, and a BMP cut short
is read without a word. A scan read that way trains a wrong model silently, so these
formats are checked here before they are decoded. (MetaImage, NRRD, PNG and TIFF
readers already fail on such files.)
"""

from __future__ import annotations

import functools
import gzip
import struct
import zlib
from pathlib import Path

from automed.errors import DataError

__all__ = ["check_complete"]

_CHUNK_BYTES = 16 * 2**20
# NIfTI-1 / NIfTI-2 header layouts: (sizeof_hdr, dim offset, dim format, bitpix offset, vox_offset offset and format).
_NIFTI = {348: (40, "8h", 72, 108, "f"), 540: (16, "8q", 14, 168, "q")}


def check_complete(path: Path) -> None:
    """Raise :class:`DataError` naming ``path`` if its bytes stop before the image does.

    Checks NIfTI (``.nii``, ``.nii.gz``: the whole gzip stream and its CRC, and the voxel
    data the header announces), JPEG (the end-of-image marker) and BMP (the size its
    header records). Other formats are left to their readers. A file is checked once
    per process while its size and modification time stay the same.
    """
    stat = path.stat()
    _check_once(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=4096)
def _check_once(name: str, size: int, mtime_ns: int) -> None:
    path, lower = Path(name), name.lower()
    if lower.endswith((".nii", ".nii.gz")):
        with path.open("rb") as handle:
            head = handle.read(544)
        # a .nii.gz that is not gzip-compressed is read as plain NIfTI by SimpleITK, so it is checked as one
        _check_nifti(path, *(_gunzip(path) if head[:2] == b"\x1f\x8b" else (head, path.stat().st_size)))
    elif lower.endswith((".jpg", ".jpeg")):
        _check_jpeg(path)
    elif lower.endswith(".bmp"):
        _check_bmp(path)


def _gunzip(path: Path) -> tuple[bytes, int]:
    """The first bytes of the decompressed stream and its full length; a broken stream is an error."""
    head, size = b"", 0
    try:
        with gzip.open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK_BYTES):
                if len(head) < 544:
                    head += chunk[: 544 - len(head)]
                size += len(chunk)
    except EOFError as exc:
        raise DataError(f"{path}: the compressed file is truncated (its gzip stream ends early); "
                        "copy or export it again.") from exc
    except (gzip.BadGzipFile, zlib.error, OSError) as exc:
        raise DataError(f"{path}: the compressed file is corrupt ({exc}); copy or export it again.") from exc
    return head, size


def _check_nifti(path: Path, head: bytes, size: int) -> None:
    header = next(((endian, n) for endian in "<>" if len(head) >= 4
                   and (n := struct.unpack(f"{endian}i", head[:4])[0]) in _NIFTI), None)
    if header is None or len(head) < header[1]:
        return  # not a NIfTI header: the reader will say what is wrong
    endian, (dim_at, dim_fmt, bitpix_at, offset_at, offset_fmt) = header[0], _NIFTI[header[1]]
    dims = struct.unpack_from(f"{endian}{dim_fmt}", head, dim_at)
    bitpix = struct.unpack_from(f"{endian}h", head, bitpix_at)[0]
    vox_offset = int(struct.unpack_from(f"{endian}{offset_fmt}", head, offset_at)[0])
    n_dims = dims[0]
    if not 1 <= n_dims <= 7 or bitpix <= 0:
        return
    n_voxels = 1
    for extent in dims[1 : n_dims + 1]:
        n_voxels *= max(int(extent), 1)
    expected = vox_offset + n_voxels * bitpix // 8
    if size < expected:
        raise DataError(f"{path}: the file is truncated: its header announces {expected} bytes of image data, "
                        f"only {size} are there; copy or export it again.")


def _check_jpeg(path: Path) -> None:
    with path.open("rb") as handle:
        if handle.read(2) != b"\xff\xd8":
            return
        handle.seek(max(0, path.stat().st_size - 4096))
        tail = handle.read().rstrip(b"\x00")
    if not tail.endswith(b"\xff\xd9"):
        raise DataError(f"{path}: the JPEG file is truncated (no end-of-image marker); copy or export it again.")


def _check_bmp(path: Path) -> None:
    with path.open("rb") as handle:
        head = handle.read(6)
    if len(head) == 6 and head[:2] == b"BM":
        recorded = struct.unpack("<I", head[2:])[0]
        if path.stat().st_size < recorded:
            raise DataError(f"{path}: the BMP file is truncated ({path.stat().st_size} of the {recorded} bytes its "
                            "header records); copy or export it again.")
