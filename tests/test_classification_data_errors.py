"""Classification data as users make them: MedMNIST archives, class folders and segmentation folders given
to the wrong task; each is one sentence naming the file."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from cli_checks import fails
from conftest import make_folders_2d, make_msd, make_npz, write
from test_classification import make_class_folders, make_manifest


def test_npz_splits_with_different_image_shapes(tmp_path):
    good = dict(np.load(make_npz(tmp_path / "good.npz")))
    good["val_images"] = good["val_images"][:, :14, :14]
    np.savez(tmp_path / "bad.npz", **good)
    fails(["fit", "--task", "classification", str(tmp_path / "bad.npz"), "--out", str(tmp_path / "run"), "--quiet"],
           r"bad.npz: the splits hold images of different shapes \(train_images \(28, 28\), val_images \(14, 14\)",
           tmp_path / "bad.npz")
    assert not (tmp_path / "run").exists()


def test_classification_of_a_segmentation_folder(tmp_path):
    data = make_msd(tmp_path / "data", n_cases=4)
    fails(["fit", "--task", "classification", str(data), "--out", str(tmp_path / "run"), "--quiet"],
           r"data: this is a segmentation dataset \(msd layout\), not class folders; fit it with --task segmentation",
           data)
    em = make_folders_2d(tmp_path / "em", n_cases=3)
    fails(["inspect", "--task", "classification", str(em)], r"em: this is a segmentation dataset \(folders layout\)",
           em)


@pytest.mark.parametrize("labels, message", [
    (np.array([["benign"], ["malignant"]] * 30), r"train_labels holds <U9 values; it must hold integer class numbers"),
    (np.array([[0], [1]] * 30, dtype=object), r"it holds Python objects, which are not loaded"),
], ids=["string_labels", "object_labels"])
def test_npz_with_non_integer_labels(tmp_path, labels, message):
    arrays = dict(np.load(make_npz(tmp_path / "good.npz")))
    arrays["train_labels"] = labels
    np.savez(tmp_path / "bad.npz", **arrays)
    fails(["fit", "--task", "classification", str(tmp_path / "bad.npz"), "--out", str(tmp_path / "run"), "--quiet"],
           rf"bad.npz: .*{message}", tmp_path / "bad.npz")


def test_npz_with_an_empty_test_split(tmp_path):
    arrays = dict(np.load(make_npz(tmp_path / "good.npz")))
    arrays["test_images"], arrays["test_labels"] = arrays["test_images"][:0], arrays["test_labels"][:0]
    np.savez(tmp_path / "bad.npz", **arrays)
    fails(["fit", "--task", "classification", str(tmp_path / "bad.npz"), "--out", str(tmp_path / "run"), "--quiet"],
           r"bad.npz: test_images is empty", tmp_path / "bad.npz")


def test_empty_class_folder(tmp_path):
    data = make_class_folders(tmp_path / "classes")
    (data / "unsure").mkdir()
    fails(["fit", "--task", "classification", str(data), "--out", str(tmp_path / "run"), "--quiet"],
           r"classes/unsure: class folder holds no images", data)


def test_classification_predict_on_an_npz_that_is_not_a_zip(fitted_classification_run, tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file" * 20)
    fails(["predict", str(fitted_classification_run), str(bad), "--out", str(tmp_path / "p.csv"), "--quiet"],
           r"bad.npz: cannot be read as a .npz file of arrays", bad)
    assert not (tmp_path / "p.csv").exists()


def test_inspect_classification_reads_every_image_and_mask(tmp_path):
    path = make_manifest(tmp_path / "m", n=10)
    write(np.ones((20, 20), np.uint8), tmp_path / "m" / "mask" / "3.png")
    fails(["inspect", str(path)], r"mask/3.png: mask shape \(20, 20\) does not match image \(28, 28\)", path)


def test_class_folder_with_sub_folders(tmp_path):
    data = make_class_folders(tmp_path / "classes")
    (data / "benign" / "more").mkdir()
    shutil.copy(next((data / "benign").glob("*.png")), data / "benign" / "more" / "x.png")
    fails(["inspect", "--task", "classification", str(data)], r"classes/benign: holds sub-folders \['more'\]", data)
