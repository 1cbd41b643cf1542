"""Segmentation datasets as users make them (damaged or mismatched files, names, channel files, dataset.json
fields, groups and manifests): a clear message naming the file, exit code 1, nothing written; or a warning
saying what was done."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import automed
from automed.cli import main
from automed.data.dataset import open_dataset
from automed.data.fingerprint import compute_fingerprint, scan_dataset
from automed.errors import DataError, RunFolderError
from cli_checks import edit_dataset_json, fails
from conftest import make_folders_2d, make_msd, make_nnunet, write
from test_classification import make_manifest


def _corrupt(root: Path) -> None:
    (root / "imagesTr" / "case_001.nii.gz").write_bytes(b"this is not a nifti file at all" * 10)


def _zero_bytes(root: Path) -> None:
    (root / "imagesTr" / "case_001.nii.gz").write_bytes(b"")


def _shape(root: Path) -> None:
    write(np.zeros((12, 14, 11), np.uint8), root / "labelsTr" / "case_001.nii.gz", spacing=(1.0, 1.0, 1.5))


def _spacing(root: Path) -> None:
    write(np.zeros((12, 14, 12), np.uint8), root / "labelsTr" / "case_001.nii.gz", spacing=(1.0, 1.0, 3.0))


def _origin(root: Path) -> None:
    write(np.zeros((12, 14, 12), np.uint8), root / "labelsTr" / "case_001.nii.gz", spacing=(1.0, 1.0, 1.5),
          origin=(5.0, 0.0, 0.0))


def _direction(root: Path) -> None:
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(np.zeros((12, 14, 12), np.uint8))
    image.SetSpacing((1.0, 1.0, 1.5))
    image.SetDirection((0, 1, 0, 1, 0, 0, 0, 0, 1))
    sitk.WriteImage(image, str(root / "labelsTr" / "case_001.nii.gz"))


def _undeclared(root: Path) -> None:
    write(np.full((12, 14, 12), 7, np.uint8), root / "labelsTr" / "case_001.nii.gz", spacing=(1.0, 1.0, 1.5))


def _image_without_label(root: Path) -> None:
    (root / "labelsTr" / "case_001.nii.gz").unlink()


def _label_without_image(root: Path) -> None:
    write(np.zeros((12, 14, 12), np.uint8), root / "labelsTr" / "extra.nii.gz")


def _non_finite(value: float):
    def breaker(root: Path) -> None:
        # SimpleITK's NIfTI reader turns NaN/Inf into 0, so this case is stored as MetaImage.
        image = np.ones((12, 14, 12), np.float32)
        image[3, 3, 3] = value
        (root / "imagesTr" / "case_001.nii.gz").unlink()
        write(image, root / "imagesTr" / "case_001.mha", spacing=(1.0, 1.0, 1.5))
        meta = json.loads((root / "dataset.json").read_text())
        meta["training"][1]["image"] = "./imagesTr/case_001.mha"
        (root / "dataset.json").write_text(json.dumps(meta))

    return breaker


def _four_d(root: Path) -> None:
    write(np.ones((2, 12, 14, 12), np.float32), root / "imagesTr" / "case_001.nii.gz")


def _mixed_dims(root: Path) -> None:
    (root / "imagesTr" / "case_001.nii.gz").unlink()
    (root / "labelsTr" / "case_001.nii.gz").unlink()
    write(np.ones((14, 12), np.float32), root / "imagesTr" / "case_001.nii.gz")
    write(np.zeros((14, 12), np.uint8), root / "labelsTr" / "case_001.nii.gz")


def _empty(root: Path) -> None:
    meta = json.loads((root / "dataset.json").read_text())
    meta["training"] = []
    (root / "dataset.json").write_text(json.dumps(meta))
    for f in (root / "labelsTr").iterdir():
        f.unlink()


BROKEN = {
    "corrupt": (_corrupt, r"imagesTr/case_001.nii.gz: cannot be read as an image"),
    "zero_bytes": (_zero_bytes, r"imagesTr/case_001.nii.gz: file is empty \(0 bytes\)"),
    "shape": (_shape, r"labelsTr/case_001.nii.gz: shape \(12, 14, 11\) does not match image \(12, 14, 12\)"),
    "spacing": (_spacing, r"labelsTr/case_001.nii.gz: spacing .* differs from image"),
    "origin": (_origin, r"labelsTr/case_001.nii.gz: origin .* differs from image"),
    "direction": (_direction, r"labelsTr/case_001.nii.gz: direction .* differs from image"),
    "undeclared_label": (_undeclared, r"labelsTr/case_001.nii.gz: label value\(s\) \[7\] are not declared in dataset.json"),
    "image_without_label": (_image_without_label, r"imagesTr/case_001.nii.gz: image without label"),
    "label_without_image": (_label_without_image, r"labelsTr/extra.nii.gz: label without image"),
    "nan": (_non_finite(np.nan), r"imagesTr/case_001.mha: image holds 1 NaN or Inf value"),
    "inf": (_non_finite(np.inf), r"imagesTr/case_001.mha: image holds 1 NaN or Inf value"),
    "four_d": (_four_d, r"imagesTr/case_001.nii.gz: image is 4D .* but a 2D or 3D image was expected"),
    "mixed_dims": (_mixed_dims, r"2D and 3D images are mixed"),
    "empty_dataset": (_empty, r"the dataset holds no labelled cases"),
}


@pytest.fixture(params=sorted(BROKEN))
def broken(request, tmp_path):
    root = make_msd(tmp_path / "data", n_cases=4)
    breaker, message = BROKEN[request.param]
    breaker(root)
    return root, message


def _check(root: Path) -> None:
    compute_fingerprint(open_dataset(root))


def test_error_names_file_and_problem(broken):
    root, message = broken
    with pytest.raises(DataError, match=message):
        _check(root)


def test_cli_fit_exits_1_and_writes_nothing(broken, tmp_path):
    root, message = broken
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["fit", str(root), "--out", str(out), "--quiet", "--folds", "2"])
    assert result.exit_code == 1, result.output
    assert "Error:" in result.output
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".run")]


def test_inspect_lists_every_problem(tmp_path):
    root = make_msd(tmp_path / "data", n_cases=4)
    _non_finite(np.nan)(root)
    write(np.full((12, 14, 12), 9, np.uint8), root / "labelsTr" / "case_002.nii.gz", spacing=(1.0, 1.0, 1.5))
    result = CliRunner().invoke(main, ["inspect", str(root)])
    assert result.exit_code == 1
    assert "case_001.mha: image holds 1 NaN" in result.output
    assert "case_002.nii.gz: label value(s) [9]" in result.output
    assert "2 problem(s) found" in result.output


def test_all_background_label_is_a_warning(tmp_path):
    root = make_msd(tmp_path / "data", n_cases=4)
    write(np.zeros((12, 14, 12), np.uint8), root / "labelsTr" / "case_001.nii.gz", spacing=(1.0, 1.0, 1.5))
    fingerprint, problems, warnings = scan_dataset(open_dataset(root))
    assert problems == []
    assert fingerprint.empty_label_cases == ("case_001",)
    assert any("case_001.nii.gz: label is all background" in w for w in warnings)


def test_not_a_dataset(tmp_path):
    (tmp_path / "random").mkdir()
    (tmp_path / "random" / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="random: not a dataset folder"):
        open_dataset(tmp_path / "random")
    result = CliRunner().invoke(main, ["inspect", str(tmp_path / "random")])
    assert result.exit_code == 1 and "not a dataset folder" in result.output


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match="nowhere: not a folder"):
        open_dataset(tmp_path / "nowhere")


def test_folders_image_without_label(tmp_path):
    root = make_folders_2d(tmp_path / "em", n_cases=3)
    (root / "labels" / "1.png").unlink()
    with pytest.raises(DataError, match=r"images/1.png: image without label"):
        open_dataset(root)


def test_single_label_value_is_an_error(tmp_path):
    root = make_folders_2d(tmp_path / "em", n_cases=3)
    for f in (root / "labels").iterdir():
        write(np.zeros((32, 32), np.uint8), f)
    with pytest.raises(DataError, match="every label holds the single value"):
        _check(root)


def test_existing_run_folder_is_not_overwritten(tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    data = make_msd(tmp_path / "data", n_cases=4)
    with pytest.raises(RunFolderError, match="taken: run folder already exists"):
        automed.fit(automed.Recipe(n_folds=2), data, out, progress=False)
    assert (out / "keep.txt").read_text() == "mine"


def test_truncated_nifti_is_named(tmp_path):
    data = make_msd(tmp_path / "data", n_cases=4)
    path = data / "imagesTr" / "case_002.nii.gz"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    fails(["inspect", str(data)], r"case_002.nii.gz: the compressed file is truncated", data)
    fails(["fit", str(data), "--out", str(tmp_path / "run"), "--quiet"], r"case_002.nii.gz: the compressed file is "
           r"truncated", data)
    assert not (tmp_path / "run").exists()


def test_two_files_of_one_case_name(tmp_path):
    data = make_folders_2d(tmp_path / "em", n_cases=3)
    shutil.copy(data / "images" / "1.png", data / "images" / "1.tif")
    fails(["inspect", str(data)], r"images/1.png and 1.tif are both named '1'", data)


def test_masks_with_different_foreground_values(tmp_path):
    data = make_folders_2d(tmp_path / "em", n_cases=4)  # masks stored as {0, 255}
    label = data / "labels" / "2.png"
    from automed.data.io import read_image

    write((read_image(label).array > 0).astype(np.uint8), label)  # this one as {0, 1}
    fails(["inspect", str(data)], r"masks disagree on the foreground value \(value 1 in .*labels/2.png; value 255 in "
                                   r".*labels/0.png and 2 more\)", data)


def test_label_foreground_everywhere_is_a_warning(tmp_path):
    data = make_msd(tmp_path / "data", n_cases=4)
    write(np.ones((12, 14, 12), np.uint8), data / "labelsTr" / "case_003.nii.gz", spacing=(1.0, 1.0, 1.5))
    result = CliRunner().invoke(main, ["inspect", str(data)])
    assert result.exit_code == 0, result.output
    assert "case_003.nii.gz: label is foreground everywhere" in result.output


def test_every_label_all_background(tmp_path):
    data = make_msd(tmp_path / "data", n_cases=4)  # dataset.json declares three classes
    for label in (data / "labelsTr").iterdir():
        write(np.zeros((12, 14, 12), np.uint8), label, spacing=(1.0, 1.0, 1.5))
    fails(["inspect", str(data)], r"data: every label holds the single value \[0\] \(all background\)", data)
    fails(["fit", str(data), "--out", str(tmp_path / "run"), "--quiet"], r"every label holds the single value", data)


@pytest.mark.parametrize("edit, message", [
    (lambda m: m["training"][1].pop("label"), r"dataset.json: training entry 1 .* has no 'label' path"),
    (lambda m: m.update(training={"case": m["training"][0]}), r"dataset.json: 'training' must be a list .* got a dict"),
    (lambda m: m["training"].append(dict(m["training"][2])), r"dataset.json: case 'case_002' is listed twice in "
                                                             r"'training' \(entries 2 and 4\)"),
], ids=["entry_without_label", "training_as_dict", "case_listed_twice"])
def test_broken_dataset_json(tmp_path, edit, message):
    data = edit_dataset_json(make_msd(tmp_path / "data", n_cases=4), edit)
    fails(["fit", str(data), "--out", str(tmp_path / "run"), "--quiet"], message, data)


def test_too_few_cases_for_the_splits_names_the_dataset(tmp_path):
    data = make_msd(tmp_path / "data", n_cases=4)
    fails(["fit", str(data), "--out", str(tmp_path / "run"), "--folds", "6", "--quiet"],
           r"data: 6-fold cross-validation needs at least 6 cases", data)


def test_channel_file_beyond_channel_names(tmp_path):
    data = make_nnunet(tmp_path / "nn", n_cases=3)
    shutil.copy(data / "imagesTr" / "c0_0001.nii.gz", data / "imagesTr" / "c0_0002.nii.gz")
    fails(["inspect", str(data)], r"c0_0002.nii.gz: channel 2, but there are 2 channel\(s\)", data)


@pytest.mark.parametrize("key, value", [("modality", "MRI"), ("modality", {"a": "MRI"}), ("modality", {"1": "MRI"})])
def test_msd_modality_not_numbered_channels(tmp_path, key, value):
    data = edit_dataset_json(make_msd(tmp_path / "data", n_cases=4), lambda m: m.update({key: value}))
    fails(["inspect", str(data)], r"dataset.json: 'modality' must map the channel numbers 0, 1, ...", data)


def test_nnunet_channel_names_as_a_list_and_a_wrong_file_ending(tmp_path):
    data = edit_dataset_json(make_nnunet(tmp_path / "nn", n_cases=3), lambda m: m.update(channel_names=["T1", "T2"]))
    fails(["inspect", str(data)], r"dataset.json: 'channel_names' must map the channel numbers", data)
    data = edit_dataset_json(make_nnunet(tmp_path / "nn2", n_cases=3), lambda m: m.update(file_ending=".nrrd"))
    fails(["inspect", str(data)], r"dataset.json: file_ending '.nrrd' matches no file in imagesTr/, which holds e.g. "
                                   r"c0_0000.nii.gz", data)


@pytest.mark.parametrize("content, message", [
    ("case,group\ncase_000,caf\xe9\n".encode("latin-1"), r"groups.csv: not UTF-8 text"),
    (b"case,group\ncase_000,a\ncase_000,b\n", r"groups.csv line 3: case 'case_000' is in group 'a' and in 'b'"),
    (b"case,group\ncase_000,\n", r"groups.csv line 2: case 'case_000' has an empty group"),
    (b"case,group,group\ncase_000,a,b\n", r"groups.csv: the header names the column\(s\) \['group'\] more than once"),
], ids=["latin1", "two_groups", "empty_group", "repeated_column"])
def test_bad_groups_csv(tmp_path, content, message):
    data = make_msd(tmp_path / "data", n_cases=4)
    (data / "groups.csv").write_bytes(content)
    fails(["inspect", str(data)], message, data)


def test_groups_csv_from_a_spreadsheet_with_a_byte_order_mark(tmp_path):
    from automed.data.dataset import open_dataset

    data = make_msd(tmp_path / "data", n_cases=4)
    rows = "".join(f"case_{i:03d},p{i // 2}\n" for i in range(4))
    (data / "groups.csv").write_text("\ufeffcase,group\n" + rows, encoding="utf-8")
    assert [c.group for c in open_dataset(data).cases] == ["p0", "p0", "p1", "p1"]


def test_manifest_listing_an_image_twice(tmp_path):
    path = make_manifest(tmp_path / "m", n=10)
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines, lines[3].replace("grade0", "gradeX").replace("grade1", "gradeX")]) + "\n")
    fails(["fit", "--task", "classification", str(path), "--out", str(tmp_path / "run"), "--quiet"],
           r"manifest.csv line 12: image 'img/2.png' is already listed on line 4", path)


def test_image_with_an_axis_of_one_voxel(tmp_path):
    data = make_msd(tmp_path / "data", n_cases=4)
    for folder in ("imagesTr", "labelsTr"):
        write(np.ones((1, 14, 12), np.uint8), data / folder / "case_001.nii.gz", spacing=(1.0, 1.0, 1.5))
    fails(["inspect", str(data)], r"case_001.nii.gz: shape \(1, 14, 12\) has an axis of one voxel", data)
