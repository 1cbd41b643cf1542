"""Every kind of bad input: a clear message naming the file, exit code 1, nothing written."""

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import automed
from automed.cli import main
from automed.data.dataset import open_dataset
from automed.data.fingerprint import compute_fingerprint, scan_dataset
from automed.errors import DataError, RunFolderError
from conftest import make_folders_2d, make_msd, write


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
