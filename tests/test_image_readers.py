"""Images are read as they are, and every read error gives the right reason (issue 34, readers).

Each test builds its bad files itself (SimpleITK, Pillow, numpy) in ``tmp_path``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from automed.data.dataset import open_dataset
from automed.data.fingerprint import compute_fingerprint, scan_dataset
from automed.data.io import read_image
from automed.errors import DataError
from cli_checks import fails
from conftest import make_msd


def _respace(path: Path, spacing: tuple[float, ...]) -> None:
    image = sitk.ReadImage(str(path))
    image.SetSpacing(spacing)
    sitk.WriteImage(image, str(path))


# --- implausible spacing: flagged by inspect, refused by fit before training ---------------------------------------

@pytest.fixture(scope="module")
def msd_small(tmp_path_factory) -> Path:
    """A 4-case MSD dataset at 1 x 1 x 1.5 mm, never modified (tests copy it)."""
    return make_msd(tmp_path_factory.mktemp("spacing") / "msd", n_cases=4)


def _with_case_spacing(msd_small: Path, tmp_path: Path, spacing: tuple[float, ...]) -> Path:
    import shutil

    root = Path(shutil.copytree(msd_small, tmp_path / "msd"))
    for folder in ("imagesTr", "labelsTr"):
        _respace(root / folder / "case_001.nii.gz", spacing)
    return root


@pytest.mark.parametrize("spacing, reason", [
    ((0.001, 0.001, 0.0015), r"spacing \(0\.001, 0\.001, 0\.0015\) is 1000 times finer than the median spacing "
                             r"of the cases \(1, 1, 1\.5\)"),
    ((1e-30, 1e-30, 1e-30), r"spacing \(1e-30, 1e-30, 1e-30\) is below 1e-06 mm"),
    ((1e5, 1.0, 1.5), r"spacing \(1e\+05, 1, 1\.5\) is above 10000 mm"),
    ((250.0, 1.0, 1.5), r"spacing \(250, 1, 1\.5\) is 250 times coarser"),
])
def test_implausible_spacing_is_a_problem_naming_the_file_and_the_median(msd_small, tmp_path, spacing, reason):
    root = _with_case_spacing(msd_small, tmp_path, spacing)
    fingerprint, problems, _ = scan_dataset(open_dataset(root))
    assert fingerprint is None
    assert len(problems) == 1 and re.search(r"imagesTr/case_001\.nii\.gz: " + reason, problems[0])
    assert "set its spacing in millimetres" in problems[0]


def test_a_tenfold_spacing_difference_is_plausible(msd_small, tmp_path):
    root = _with_case_spacing(msd_small, tmp_path, (0.5, 0.5, 5.0))  # thin in-plane, thick slices: real
    fingerprint, problems, _ = scan_dataset(open_dataset(root))
    assert problems == [] and fingerprint is not None


def test_inspect_flags_and_fit_refuses_a_case_in_metres(msd_small, tmp_path):
    root = _with_case_spacing(msd_small, tmp_path, (0.001, 0.001, 0.0015))
    out = fails(["inspect", str(root)], r"problem: .*case_001\.nii\.gz: spacing .* 1000 times finer", root)
    assert "No problems found" not in out
    fails(["fit", str(root), "--out", str(tmp_path / "run"), "--quiet", "--folds", "2"],
          r"case_001\.nii\.gz: spacing \(0\.001, 0\.001, 0\.0015\) is 1000 times finer", root)
    assert not (tmp_path / "run").exists()


def test_a_case_that_shrinks_below_two_voxels_on_the_working_grid_is_refused(tmp_path):
    root = make_msd(tmp_path / "msd", n_cases=3, shape=(12, 14, 12))
    for folder in ("imagesTr", "labelsTr"):
        _respace(root / folder / "case_001.nii.gz", (1.0, 1.0, 0.1))  # 15x finer than 1.5 mm: plausible
    with pytest.raises(DataError, match=r"case_001\.nii\.gz: on the working grid of spacing .* shrinks from "
                                        r"\[12, 14, 12\] to \[1, 14, 12\] voxels"):
        compute_fingerprint(open_dataset(root), target_spacing=(1.5, 1.0, 1.0))


# --- image headers: the bad field named before any pixel is read -----------------------------------------------------

@pytest.fixture(scope="module")
def mhd_header(tmp_path_factory) -> tuple[Path, str]:
    """A valid 4 x 5 x 6 MetaImage (its folder and header text), to break field by field."""
    folder = tmp_path_factory.mktemp("mhd")
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((4, 5, 6), np.uint8)), str(folder / "ok.mhd"))
    return folder, (folder / "ok.mhd").read_text()


@pytest.mark.parametrize("field, bad, message", [
    ("ElementSpacing = 1 1 1", "ElementSpacing = 0 1 1", r"ElementSpacing = 0 1 1 is not a voxel size"),
    ("ElementSpacing = 1 1 1", "ElementSpacing = nan 1 1", r"ElementSpacing = nan 1 1 is not a voxel size"),
    ("ElementSpacing = 1 1 1", "ElementSpacing = inf 1 1", r"ElementSpacing = inf 1 1 is not a voxel size"),
    ("DimSize = 6 5 4", "DimSize = 100000 100000 100000",
     r"DimSize = 100000 100000 100000 announces [\d,]+ GiB of pixels, more than the .* GiB of memory available"),
    ("DimSize = 6 5 4", "DimSize = 0 5 4", r"DimSize = 0 5 4 has an axis of 0 voxels"),
    ("ok.raw", "gone.raw", r"ElementDataFile = gone.raw names a pixel data file that is not in"),
    ("MET_UCHAR", "MET_NONSENSE", r"ElementType = MET_NONSENSE is not a pixel type SimpleITK reads"),
])
def test_a_bad_metaimage_header_names_the_field(mhd_header, field, bad, message):
    folder, text = mhd_header
    path = folder / f"bad_{abs(hash(bad))}.mhd"
    path.write_text(text.replace(field, bad))
    with pytest.raises(DataError, match=re.escape(str(path)) + ": its header's " + message) as caught:
        read_image(path)
    assert "hxx" not in str(caught.value) and "Exception thrown" not in str(caught.value)


def test_a_negative_metaimage_spacing_is_read_as_itk_flips_it(mhd_header):
    folder, text = mhd_header
    path = folder / "flipped.mhd"
    path.write_text(text.replace("ElementSpacing = 1 1 1", "ElementSpacing = -1 1 1"))
    assert read_image(path).array.shape == (4, 5, 6)


def test_a_nrrd_with_a_zero_axis_names_space_directions(tmp_path):
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((4, 5, 6), np.uint8)), str(tmp_path / "ok.nhdr"))
    path = tmp_path / "zero.nhdr"
    path.write_text((tmp_path / "ok.nhdr").read_text().replace("(1,0,0) (0,1", "(0,0,0) (0,1"))
    with pytest.raises(DataError, match=r"zero\.nhdr: its header's space directions \(0\.0, 1\.0, 1\.0\) is not a "
                                        r"voxel size"):
        read_image(path)


def test_a_nifti_with_zero_pixdim_reads_as_spacing_one_as_the_nifti_library_does(tmp_path):
    import struct

    path = tmp_path / "zero.nii"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((4, 5, 6), np.float32)), str(path))
    content = bytearray(path.read_bytes())
    content[80:84] = struct.pack("<f", 0.0)  # pixdim[1], the x spacing of a NIfTI-1 header
    path.write_bytes(bytes(content))
    assert read_image(path).geometry.spacing == (1.0, 1.0, 1.0)


def test_a_header_problem_is_a_clean_inspect_error(mhd_header, tmp_path):
    folder, text = mhd_header
    root = tmp_path / "data"
    for sub in ("images", "labels"):
        (root / sub).mkdir(parents=True)
        sitk.WriteImage(sitk.GetImageFromArray(np.zeros((4, 5, 6), np.uint8)), str(root / sub / "a.mha"))
    (root / "images" / "b.mhd").write_text(text.replace("ElementSpacing = 1 1 1", "ElementSpacing = nan 1 1")
                                           .replace("ok.raw", str(folder / "ok.raw")))
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((4, 5, 6), np.uint8)), str(root / "labels" / "b.mha"))
    fails(["inspect", str(root)], r"images/b\.mhd: its header's ElementSpacing = nan 1 1 is not a voxel size", root)


# --- a folder where one image is expected: say what it holds ----------------------------------------------------------

def _pngs(folder: Path, n: int) -> Path:
    from PIL import Image as PILImage

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        PILImage.fromarray(np.full((8, 8), i * 10, np.uint8)).save(folder / f"{i}.png")
    return folder


def test_a_folder_of_pngs_read_as_one_image_says_what_it_holds(tmp_path):
    folder = _pngs(tmp_path / "slides", 12)
    with pytest.raises(DataError, match=r"slides: a folder of 12 PNG image\(s\), not one image or a DICOM series; "
                                        r"give its images one by one"):
        read_image(folder)


@pytest.mark.parametrize("make, message", [
    (lambda f: f.mkdir(), r"an empty folder, not an image or a DICOM series"),
    (lambda f: _pngs(f / "inner", 2), r"a folder of 1 sub-folder\(s\) \(e\.g\. inner\) and no image"),
    (lambda f: (f.mkdir(), (f / "notes.txt").write_text("x")), r"a folder of 1 file\(s\), none of them an image"),
    (lambda f: (f.mkdir(), (f / "x.dcm").write_bytes(b"not dicom")), r"a folder of 1 \.dcm file\(s\) in which GDCM finds no"),
])
def test_a_folder_without_a_series_says_what_it_holds(tmp_path, make, message):
    folder = tmp_path / "case"
    make(folder)
    with pytest.raises(DataError, match=r"case: " + message):
        read_image(folder)


def test_links_that_loop_or_lead_nowhere_are_named_so(tmp_path):
    from automed.data.inputs import find_images

    images = _pngs(tmp_path / "images", 2)
    (images / "back").symlink_to(images, target_is_directory=True)
    with pytest.raises(DataError, match=r"images/back: a link back to .*images, a folder that holds it \(a loop\)"):
        find_images(images, ("luminance",))
    (tmp_path / "self.png").symlink_to(tmp_path / "self.png")
    with pytest.raises(DataError, match=r"self\.png: a symbolic link that leads back to itself \(a loop\)"):
        read_image(tmp_path / "self.png")
    (tmp_path / "dangling.png").symlink_to(tmp_path / "gone.png")
    with pytest.raises(DataError, match=r"dangling\.png: a symbolic link to .*gone\.png, which does not exist"):
        read_image(tmp_path / "dangling.png")


def test_a_list_mixing_files_and_a_folder_of_pictures_is_refused_before_predicting(tmp_path):
    from automed.data.inputs import find_images

    folder = _pngs(tmp_path / "more", 3)
    with pytest.raises(DataError, match=r"more: a folder of 3 PNG image\(s\), not one image"):
        find_images([folder / "0.png", folder], ("luminance",))


def test_a_sub_folder_of_images_in_a_dataset_is_named_not_called_an_image_without_label(tmp_path):
    root = tmp_path / "data"
    for sub in ("images", "labels"):
        _pngs(root / sub, 2)
    _pngs(root / "images" / "extra", 4)
    fails(["inspect", str(root)], r"images/extra: a folder of 4 PNG image\(s\), not one image or a DICOM series", root)


# --- mask encodings: palette, RGB colours, grey + alpha ---------------------------------------------------------------

def _mask_dataset(root: Path, save_mask) -> Path:
    """Two 16 x 16 grey PNG images and their masks, each saved by ``save_mask(class_array, path)``."""
    from PIL import Image as PILImage

    for i in range(2):
        classes = np.zeros((16, 16), np.uint8)
        classes[3:8, 3:9], classes[9:13, 4:12] = 1, 2
        (root / "images").mkdir(parents=True, exist_ok=True)
        (root / "labels").mkdir(parents=True, exist_ok=True)
        PILImage.fromarray((60 + 50 * classes + i).astype(np.uint8)).save(root / "images" / f"{i}.png")
        save_mask(classes, root / "labels" / f"{i}.png")
    return root


def _palette(classes: np.ndarray, path: Path) -> None:
    from PIL import Image as PILImage

    picture = PILImage.fromarray(classes, "P")
    picture.putpalette([0, 0, 0, 255, 0, 0, 0, 128, 255] + [0] * 759)
    picture.save(path)


def test_a_coloured_palette_mask_is_read_as_its_indices(tmp_path):
    root = _mask_dataset(tmp_path / "data", _palette)
    fingerprint, problems, warnings = scan_dataset(open_dataset(root))
    assert problems == []
    assert fingerprint.classes == {0: "background", 1: "label_1", 2: "label_2"}
    assert any("palette indices [0, 1, 2] are read as the class values" in w for w in warnings)


def test_an_rgb_colour_mask_is_named_with_how_to_convert_it(tmp_path):
    from PIL import Image as PILImage

    colours = np.array([(0, 0, 0), (255, 0, 0), (0, 255, 0)], np.uint8)
    root = _mask_dataset(tmp_path / "data", lambda c, p: PILImage.fromarray(colours[c]).save(p))
    fails(["inspect", str(root)], r"labels/0\.png: an RGB colour mask \(colours \(0, 0, 0\), \(0, 255, 0\), "
                                  r"\(255, 0, 0\)\), but a mask holds class values; replace each colour by its class "
                                  r"number", root)


def test_a_colour_photograph_saved_as_a_mask_is_not_called_a_colour_mask(tmp_path):
    from PIL import Image as PILImage

    rng = np.random.default_rng(0)
    root = _mask_dataset(tmp_path / "data", lambda c, p: PILImage.fromarray(
        rng.integers(0, 255, (*c.shape, 3)).astype(np.uint8)).save(p))
    _, problems, _ = scan_dataset(open_dataset(root))
    assert re.search(r"labels/0\.png: a colour picture of \d+ colours, not a mask", problems[0])


def test_grey_alpha_pictures_read_as_grey_when_the_alpha_is_uniform_else_name_it(tmp_path):
    from PIL import Image as PILImage

    grey = np.arange(64, dtype=np.uint8).reshape(8, 8)
    PILImage.fromarray(np.dstack([grey, np.full_like(grey, 255)]), "LA").save(tmp_path / "flat.png")
    image = read_image(tmp_path / "flat.png")
    assert np.array_equal(image.array, grey) and "alpha dropped" in image.notes[0]
    PILImage.fromarray(np.dstack([grey, (grey > 30).astype(np.uint8) * 255]), "LA").save(tmp_path / "cut.png")
    with pytest.raises(DataError, match=r"cut\.png: a grey picture with an alpha \(transparency\) channel that varies "
                                        r"from 0 to 255"):
        read_image(tmp_path / "cut.png")


# --- pictures as a viewer shows them: EXIF orientation, TIFF pages, one region of interest ----------------------------

def _exif_jpeg(array: np.ndarray, path: Path, orientation: int) -> Path:
    from PIL import Image as PILImage

    exif = PILImage.Exif()
    exif[0x0112] = orientation
    PILImage.fromarray(array).save(path, exif=exif, quality=100)
    return path


@pytest.mark.parametrize("orientation, turn", [(3, lambda a: a[::-1, ::-1]), (6, lambda a: np.rot90(a, -1)),
                                               (8, lambda a: np.rot90(a, 1)), (2, lambda a: a[:, ::-1])])
def test_an_exif_rotated_jpeg_is_read_as_a_viewer_shows_it(tmp_path, orientation, turn):
    stored = np.zeros((16, 24, 3), np.uint8)
    stored[:8, :8] = (250, 40, 40)  # a red top-left corner, as stored
    image = read_image(_exif_jpeg(stored, tmp_path / "photo.jpg", orientation), colour=True)
    shown = np.moveaxis(image.array, 0, -1)
    assert image.colour and shown.shape == turn(stored).shape
    assert np.abs(shown.astype(int) - turn(stored)).mean() < 5  # JPEG noise only (stored as is: about 37)
    assert "EXIF orientation" in image.notes[0]


def test_an_exif_rotated_image_pairs_with_the_mask_drawn_on_what_the_viewer_shows(tmp_path):
    from PIL import Image as PILImage

    root = tmp_path / "data"
    for i in range(2):
        stored = np.full((16, 24), 40, np.uint8)
        stored[2:8, 3:12] = 220
        (root / "labels").mkdir(parents=True, exist_ok=True)
        (root / "images").mkdir(parents=True, exist_ok=True)
        _exif_jpeg(stored, root / "images" / f"{i}.jpg", 6)
        PILImage.fromarray(np.where(np.rot90(stored, -1) > 128, 255, 0).astype(np.uint8)).save(root / "labels" / f"{i}.png")
    fingerprint, problems, warnings = scan_dataset(open_dataset(root))
    assert problems == [] and fingerprint.median_shape == (24, 16)
    assert any("turned 90 degrees clockwise as its EXIF orientation (6) says" in w for w in warnings)
    PILImage.fromarray(np.zeros((16, 24), np.uint8)).save(root / "labels" / "1.png")  # drawn on the stored pixels
    _, problems, _ = scan_dataset(open_dataset(root))
    assert re.search(r"labels/1\.png: shape \(16, 24\) does not match image \(24, 16\) \(as read: turned 90 degrees "
                     r"clockwise as its EXIF orientation \(6\) says", problems[0])


def test_the_pages_of_a_grey_tiff_are_the_slices_of_a_volume(tmp_path):
    from PIL import Image as PILImage

    pages = [PILImage.fromarray(np.full((8, 10), 30 * (k + 1), np.uint8)) for k in range(3)]
    pages[0].save(tmp_path / "pages.tif", save_all=True, append_images=pages[1:])
    image = read_image(tmp_path / "pages.tif", colour=True)
    assert not image.colour and image.array.shape == (3, 8, 10)
    assert image.array[:, 0, 0].tolist() == [30, 60, 90]
    assert "its 3 pages are read as the 3 slices of a volume" in image.notes[0]


def test_a_tiff_of_three_planes_that_may_be_colours_or_slices_is_refused_naming_the_ambiguity(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    slices = np.stack([np.full((8, 10), 30 * (k + 1), np.uint8) for k in range(3)])
    tifffile.imwrite(tmp_path / "planes.tif", slices)  # tifffile marks a (3, H, W) array as planar RGB
    with pytest.raises(DataError, match=r"planes\.tif: a TIFF whose 3 planes are stored apart \(PlanarConfiguration 2\) "
                                        r"and marked as the R, G and B .* photometric='minisblack'"):
        read_image(tmp_path / "planes.tif")
    tifffile.imwrite(tmp_path / "slices.tif", slices, photometric="minisblack")
    assert read_image(tmp_path / "slices.tif").array.shape == (3, 8, 10)


def test_rois_and_fov_folders_together_are_an_error(tmp_path):
    root = tmp_path / "data"
    for sub in ("images", "labels", "rois", "fov"):
        _pngs(root / sub, 2)
    fails(["inspect", str(root)], r"data: rois/ and fov/ each hold regions of interest, but a case has one region; "
                                  r"keep one folder", root)
