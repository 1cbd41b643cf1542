"""Dataset layouts, readers keeping geometry, fingerprint, normalisation and splits."""

import json

import numpy as np
import pytest
import SimpleITK as sitk

from automed.data.dataset import detect_format, open_dataset
from automed.data.inputs import find_images
from automed.data.fingerprint import compute_fingerprint
from automed.data.io import read_image, strip_suffix, write_image
from automed.data.loading import load_case
from automed.data.normalize import map_labels, normalize
from automed.data.splits import make_folds
from automed.errors import DataError
from conftest import blob_case, make_folders_2d, make_msd, write


def test_detects_each_layout(msd, folders_2d, nnunet):
    assert detect_format(msd) == "msd"
    assert detect_format(folders_2d) == "folders"
    assert detect_format(nnunet) == "nnunet"


def test_msd_cases_and_classes(msd):
    dataset = open_dataset(msd)
    assert len(dataset.cases) == 8
    assert dataset.classes == {0: "background", 1: "left", 2: "right"}
    assert dataset.channel_names == ("MRI",)


def test_nnunet_multichannel(nnunet):
    dataset = open_dataset(nnunet)
    assert dataset.channel_names == ("T1", "T2")
    case = load_case(dataset.cases[0], dataset.n_channels)
    assert case.image.shape == (2, 10, 12, 10)
    assert [p.name for p in dataset.cases[0].image_paths] == ["c0_0000.nii.gz", "c0_0001.nii.gz"]


def test_nnunet_missing_channel(nnunet):
    (nnunet / "imagesTr" / "c2_0001.nii.gz").unlink()
    with pytest.raises(DataError, match=r"case 'c2' lacks channel\(s\) \[1\] of 2"):
        open_dataset(nnunet)


def test_nnunet_missing_key(nnunet):
    meta = json.loads((nnunet / "dataset.json").read_text())
    del meta["file_ending"]
    meta["channel_names"] = meta["channel_names"]
    (nnunet / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="dataset.json: missing 'file_ending'"):
        open_dataset(nnunet, "nnunet")


def test_binary_255_masks_are_mapped_and_recorded(folders_2d):
    fingerprint = compute_fingerprint(open_dataset(folders_2d))
    assert fingerprint.label_mapping == {0: 0, 255: 1}
    assert fingerprint.dims == 2
    label = np.array([[0, 255], [255, 0]])
    assert map_labels(label, fingerprint.label_mapping).tolist() == [[0, 1], [1, 0]]


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha", ".mhd"])
def test_3d_formats_keep_geometry(tmp_path, suffix):
    array = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.5, 0.7, 2.0))
    image.SetOrigin((10.0, -3.0, 4.5))
    image.SetDirection((0, 1, 0, 1, 0, 0, 0, 0, -1))
    path = tmp_path / f"img{suffix}"
    sitk.WriteImage(image, str(path))
    read = read_image(path)
    assert np.array_equal(read.array, array)
    assert read.geometry.spacing == pytest.approx((0.5, 0.7, 2.0))
    assert read.geometry.origin == pytest.approx((10.0, -3.0, 4.5))
    assert read.geometry.direction == pytest.approx((0, 1, 0, 1, 0, 0, 0, 0, -1))
    out = tmp_path / f"copy{suffix}"
    write_image(array, read.geometry, out)
    assert read_image(out).geometry == read.geometry


@pytest.mark.parametrize("suffix", [".png", ".tif", ".bmp"])
def test_2d_formats(tmp_path, suffix):
    root = make_folders_2d(tmp_path / "d", n_cases=3, suffix=suffix)
    dataset = open_dataset(root)
    assert [c.case_id for c in dataset.cases] == ["0", "1", "2"]
    assert load_case(dataset.cases[0], 1).image.shape == (1, 32, 32)


def test_rgb_png_becomes_grey(tmp_path):
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 0] = 255
    sitk.WriteImage(sitk.GetImageFromArray(rgb, isVector=True), str(tmp_path / "rgb.png"))
    image = read_image(tmp_path / "rgb.png")
    assert image.array.shape == (8, 8)
    assert image.array.max() == pytest.approx(0.299 * 255, rel=1e-3)


def test_dicom_series_folder(tmp_path):
    rng = np.random.default_rng(0)
    volume = rng.integers(0, 1000, (4, 6, 5)).astype(np.int16)
    series = tmp_path / "series"
    series.mkdir()
    import locale

    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    ctype = locale.setlocale(locale.LC_CTYPE)  # GDCM's DICOM writer sets the C locale; later tests need UTF-8
    for z in range(volume.shape[0]):
        slice_ = sitk.GetImageFromArray(volume[z])
        slice_.SetSpacing((0.8, 0.8))
        for tag, value in {"0020|000d": "1.2.3", "0020|000e": "1.2.3.4", "0020|0013": str(z + 1),
                           "0020|0032": f"0\\0\\{z * 2.0}", "0020|0037": "1\\0\\0\\0\\1\\0",
                           "0008|0060": "MR", "0028|0030": "0.8\\0.8"}.items():
            slice_.SetMetaData(tag, value)
        writer.SetFileName(str(series / f"{z:03d}.dcm"))
        writer.Execute(slice_)
    locale.setlocale(locale.LC_CTYPE, ctype)
    image = read_image(series)
    assert image.array.shape == (4, 6, 5)
    assert np.array_equal(image.array, volume)
    assert image.geometry.spacing[2] == pytest.approx(2.0)
    assert [c.case_id for c in find_images(series, ("MR",))] == ["series"]


def test_strip_suffix():
    from pathlib import Path

    assert strip_suffix(Path("a/hippo_1.nii.gz")) == "hippo_1"
    assert strip_suffix(Path("b/7.png")) == "7"


def test_fingerprint_contents(msd):
    fingerprint = compute_fingerprint(open_dataset(msd))
    assert fingerprint.n_cases == 8 and fingerprint.dims == 3
    assert fingerprint.median_spacing == pytest.approx((1.5, 1.0, 1.0))  # array axis order
    assert fingerprint.normalization == "zscore"
    assert sum(fingerprint.class_voxel_fraction.values()) == pytest.approx(1.0)
    assert fingerprint.intensity[0]["mean"] > 100  # foreground is bright
    round_trip = type(fingerprint).from_dict(json.loads(json.dumps(fingerprint.to_dict())))
    assert round_trip == fingerprint


def test_ct_normalisation_clips_to_foreground_percentiles(tmp_path):
    root = make_msd(tmp_path / "ct", n_cases=4, modality="CT")
    fingerprint = compute_fingerprint(open_dataset(root))
    assert fingerprint.normalization == "ct"
    stats = fingerprint.intensity[0]
    image = np.array([[[stats["p99_5"] + 1000.0, stats["mean"]]]], dtype=np.float32)
    out = normalize(image, fingerprint)
    assert out[0, 0, 1] == pytest.approx(0.0, abs=1e-5)
    assert out[0, 0, 0] == pytest.approx((stats["p99_5"] - stats["mean"]) / stats["std"], rel=1e-5)


def test_each_channel_is_normalised_by_its_name_as_nnunet_does(nnunet):
    meta = json.loads((nnunet / "dataset.json").read_text())
    meta["channel_names"] = {"0": "CT", "1": "noNorm"}
    (nnunet / "dataset.json").write_text(json.dumps(meta))
    dataset = open_dataset(nnunet)
    fingerprint = compute_fingerprint(dataset)
    assert fingerprint.channel_normalization == ("ct", "none") and fingerprint.normalization == "per channel"
    image = load_case(dataset.cases[0], 2).image
    out = normalize(image, fingerprint)
    assert np.array_equal(out[1], image[1]) and not np.allclose(out[0], image[0])


def test_zscore_normalisation_is_per_case(msd):
    dataset = open_dataset(msd)
    fingerprint = compute_fingerprint(dataset)
    image = load_case(dataset.cases[0], 1).image * 3 + 7
    out = normalize(image, fingerprint)
    assert out.mean() == pytest.approx(0, abs=1e-4) and out.std() == pytest.approx(1, abs=1e-3)


def test_folds_cover_every_case_once():
    ids = [f"c{i}" for i in range(11)]
    folds = make_folds(ids, [None] * 11, 5, random_state=0)
    assert sorted(sum((f["val"] for f in folds), [])) == sorted(ids)
    for fold in folds:
        assert not set(fold["train"]) & set(fold["val"])
    assert folds == make_folds(ids, [None] * 11, 5, random_state=0)


def test_folds_keep_patients_together():
    ids = [f"c{i}" for i in range(12)]
    groups = [f"p{i // 3}" for i in range(12)]
    for fold in make_folds(ids, groups, 4, random_state=1):
        val_groups = {groups[ids.index(c)] for c in fold["val"]}
        train_groups = {groups[ids.index(c)] for c in fold["train"]}
        assert not val_groups & train_groups


def test_groups_csv_is_read(msd):
    rows = "case,group\n" + "".join(f"case_{i:03d},p{i // 2}\n" for i in range(8))
    (msd / "groups.csv").write_text(rows)
    dataset = open_dataset(msd)
    assert dataset.cases[3].group == "p1"


def test_groups_csv_missing_case(msd):
    (msd / "groups.csv").write_text("case,group\ncase_000,p0\n")
    with pytest.raises(DataError, match=r"groups.csv: case\(s\) \['case_001'.* have no group"):
        open_dataset(msd)


def test_too_few_cases_for_folds():
    with pytest.raises(DataError, match="5-fold cross-validation needs at least 5 cases"):
        make_folds(["a", "b", "c"], [None] * 3, 5)


def test_find_images_in_folder(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        write(blob_case((8, 8, 8), rng)[0], tmp_path / "new" / f"x{i}.nii.gz")
    cases = find_images(tmp_path / "new", ("MRI",))
    assert [c.case_id for c in cases] == ["x0", "x1", "x2"]
    with pytest.raises(DataError, match="nothing: not found"):
        find_images(tmp_path / "nothing", ("MRI",))


def test_inner_splits_of_successive_folds_hold_out_disjoint_cases():
    from automed.data.splits import inner_split

    ids = [f"case_{i}" for i in range(12)]
    held_out = [inner_split(ids, [None] * 12, max_folds=4, fold=k)["val"] for k in range(4)]
    assert sorted(c for v in held_out for c in v) == sorted(ids)
    assert inner_split(ids, [None] * 12, max_folds=4, fold=5) == inner_split(ids, [None] * 12, max_folds=4, fold=1)


def test_a_fold_with_one_training_case_is_a_clear_error():
    from automed.data.splits import inner_split

    with pytest.raises(DataError, match="a fold trains on 1 case, too few to also tune on.*raise n_folds"):
        inner_split(["case_0"], [None])
