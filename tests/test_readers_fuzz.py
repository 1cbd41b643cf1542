"""Property tests over the dataset readers: a clean :class:`DataError` or a correct result, never a traceback.

Hypothesis draws truncation points, corrupted bytes, label encodings and ``.npz``
contents; the number of examples is bounded so ``make test`` stays fast.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from automed.data.classification import open_classification
from automed.data.dataset import open_dataset
from automed.data.fingerprint import scan_dataset
from automed.data.io import read_image
from automed.errors import DataError

FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
FORMATS = [(".nii.gz", True), (".nii", False), (".mha", True), (".mha", False), (".nrrd", True), (".png", False),
           (".jpg", False), (".bmp", False), (".tif", False)]


@pytest.fixture(scope="module")
def originals(tmp_path_factory) -> dict[str, tuple[bytes, np.ndarray]]:
    """One valid file per format (2D for the photo formats, 3D otherwise): its bytes and what it reads as."""
    folder = tmp_path_factory.mktemp("originals")
    rng = np.random.default_rng(0)
    found = {}
    for suffix, compress in FORMATS:
        shape = (24, 20) if suffix in (".png", ".jpg", ".bmp", ".tif") else (6, 10, 8)
        array = rng.integers(0, 255, shape).astype(np.uint8)
        path = folder / f"image{'-z' if compress else ''}{suffix}"
        sitk.WriteImage(sitk.GetImageFromArray(array), str(path), useCompression=compress)
        found[path.name] = (path.read_bytes(), read_image(path).array)
    return found


def _read_bytes_as(name: str, content: bytes) -> np.ndarray:
    folder = Path(tempfile.mkdtemp())
    try:
        path = folder / name
        path.write_bytes(content)
        return read_image(path).array
    finally:
        shutil.rmtree(folder)


@FUZZ
@given(data=st.data())
def test_a_truncated_file_is_an_error_or_reads_whole(originals, data):
    name = data.draw(st.sampled_from(sorted(originals)))
    content, expected = originals[name]
    cut = data.draw(st.integers(0, len(content) - 1))
    try:
        array = _read_bytes_as(name, content[:cut])
    except DataError as exc:
        assert name in str(exc)
        return
    assert np.array_equal(array, expected), f"{name} cut to {cut} of {len(content)} bytes read as a different image"


@FUZZ
@given(data=st.data())
def test_corrupted_bytes_give_an_error_or_an_image(originals, data):
    name = data.draw(st.sampled_from(sorted(originals)))
    content = bytearray(originals[name][0])
    for _ in range(data.draw(st.integers(1, 8))):
        content[data.draw(st.integers(0, len(content) - 1))] = data.draw(st.integers(0, 255))
    try:
        array = _read_bytes_as(name, bytes(content))
    except DataError as exc:
        assert name in str(exc)
        return
    assert array.size > 0


@FUZZ
@given(encodings=st.lists(st.sampled_from([(1,), (2,), (255,), (128,), (1, 2), (), (1, 255)]), min_size=2, max_size=5))
def test_label_encodings_give_a_problem_or_the_right_classes(tmp_path, encodings):
    root = Path(tempfile.mkdtemp(dir=tmp_path))
    for i, values in enumerate(encodings):
        label = np.zeros((16, 16), np.uint8)
        for k, value in enumerate(values):
            label[2 + 4 * k: 5 + 4 * k, 3:9] = value
        sitk.WriteImage(sitk.GetImageFromArray(label * 0 + 100 + label // 2), str(_mkdir(root / "images") / f"{i}.png"))
        sitk.WriteImage(sitk.GetImageFromArray(label), str(_mkdir(root / "labels") / f"{i}.png"))
    fingerprint, problems, warnings = scan_dataset(open_dataset(root))
    foreground = {v for values in encodings for v in values}
    binary = all(len(values) <= 1 for values in encodings)
    if not foreground:
        assert fingerprint is None and "every label holds the single value [0]" in problems[0]
    elif binary and len(foreground) > 1:
        assert fingerprint is None and "masks disagree on the foreground value" in problems[0]
    else:
        assert problems == []
        assert fingerprint.classes == {0: "background", **{i + 1: f"label_{v}" for i, v in enumerate(sorted(foreground))}}
        n_empty = sum(not values for values in encodings)
        assert len(fingerprint.empty_label_cases) == n_empty == sum("all background" in w for w in warnings)


def _mkdir(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


LABEL_KINDS = {"int": lambda y: y.astype(np.int64), "float": lambda y: y.astype(np.float32),
               "str": lambda y: y.astype(str), "bool": lambda y: y.astype(bool)}


@FUZZ
@given(label_kind=st.sampled_from(sorted(LABEL_KINDS)), sizes=st.tuples(*[st.integers(0, 6)] * 3),
       shapes=st.tuples(*[st.sampled_from([(8, 8), (6, 8), (4, 8, 8)])] * 3), multichannel=st.booleans())
def test_npz_contents_give_an_error_or_every_case(tmp_path, label_kind, sizes, shapes, multichannel):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n, shape in zip(("train", "val", "test"), sizes, shapes):
        arrays[f"{split}_images"] = rng.integers(0, 255, (n, *shape, 3) if multichannel else (n, *shape)).astype(np.uint8)
        arrays[f"{split}_labels"] = LABEL_KINDS[label_kind](np.arange(n) % 2)[:, None]
    path = Path(tempfile.mkdtemp(dir=tmp_path)) / "fuzz.npz"
    np.savez(path, **arrays)
    try:
        dataset = open_classification(path)
    except DataError as exc:
        assert "fuzz.npz" in str(exc)
        return
    assert len(dataset.cases) == sum(sizes)
    assert label_kind != "str" and all(sizes) and len({s for s in shapes}) == 1


MHD_VALUES = st.sampled_from(["0", "-1", "1", "nan", "inf", "1e-30", "1e30", "100000", "abc", ""])


@FUZZ
@given(spacing=st.lists(MHD_VALUES, min_size=3, max_size=3), size=st.lists(MHD_VALUES, min_size=3, max_size=3))
def test_a_metaimage_header_gives_an_error_naming_the_file_or_an_image(tmp_path, spacing, size):
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((4, 5, 6), np.uint8)), str(folder / "ok.mhd"))
    header = (folder / "ok.mhd").read_text()
    path = folder / "fuzz.mhd"
    path.write_text(header.replace("ElementSpacing = 1 1 1", f"ElementSpacing = {' '.join(spacing)}")
                    .replace("DimSize = 6 5 4", f"DimSize = {' '.join(size)}"))
    try:
        image = read_image(path)
    except DataError as exc:
        assert "fuzz.mhd" in str(exc) and "Exception thrown" not in str(exc)
        return
    assert image.array.size > 0 and np.isfinite(image.geometry.spacing).all() and min(image.geometry.spacing) > 0


@FUZZ
@given(mode=st.sampled_from(["L", "LA", "P", "RGB", "RGBA", "I;16", "1"]), orientation=st.integers(1, 8),
       alpha=st.sampled_from(["uniform", "varying"]))
def test_a_picture_of_any_mode_and_orientation_reads_as_shown_or_names_the_file(tmp_path, mode, orientation, alpha):
    from PIL import Image as PILImage

    rng = np.random.default_rng(orientation)
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    grey = rng.integers(0, 4, (6, 9)).astype(np.uint8)
    picture = PILImage.fromarray(grey * 60).convert(mode if mode != "LA" else "L")
    if mode == "LA":
        picture.putalpha(PILImage.fromarray(np.full_like(grey, 255) if alpha == "uniform" else grey * 60))
    exif = PILImage.Exif()
    exif[0x0112] = orientation
    picture.save(folder / "fuzz.png", exif=exif)
    try:
        image = read_image(folder / "fuzz.png")
    except DataError as exc:
        assert "fuzz.png" in str(exc) and mode == "LA" and alpha == "varying"
        return
    assert image.array.shape[-2:] == ((9, 6) if orientation >= 5 else (6, 9))


def test_a_picture_header_claiming_too_many_pixels_is_an_error_naming_the_file(tmp_path):
    """Found by the fuzz test above: a corrupted PNG whose header claims 20000 x 20000 pixels made Pillow raise its
    decompression-bomb error out of automed's reader instead of a DataError."""
    import struct
    import zlib

    from PIL import Image as PILImage

    from automed.data.io import read_image
    from automed.errors import DataError

    path = tmp_path / "bomb.png"
    PILImage.fromarray(np.zeros((4, 4), np.uint8)).save(path)
    data = bytearray(path.read_bytes())
    header = struct.pack(">II", 20000, 20000) + bytes(data[24:29])  # IHDR: width, height, then depth and flags
    data[16:29] = header
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + header))
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="bomb.png"):
        read_image(path)
