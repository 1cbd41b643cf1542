"""The second bad-input audit (issue 13): some 160 further inputs tried through the CLI; one test
per finding (channel files, dataset.json fields, CSV files, options, tiny images)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from automed.errors import DataError
from cli_checks import copy_run, edit_dataset_json, fails
from conftest import make_msd, make_nnunet, write
from test_classification import make_class_folders, make_manifest


def test_predict_files_that_are_not_channel_files(tmp_path):
    from automed.data.inputs import find_images

    folder = make_msd(tmp_path / "data", n_cases=3) / "imagesTr"  # case_000.nii.gz ... for a two-channel run
    with pytest.raises(DataError, match=r"case_000.nii.gz: expected a name like CASE_0000.nii.gz"):
        find_images(folder, ("T1", "T2"))


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


def test_inspect_classification_reads_every_image_and_mask(tmp_path):
    path = make_manifest(tmp_path / "m", n=10)
    write(np.ones((20, 20), np.uint8), tmp_path / "m" / "mask" / "3.png")
    fails(["inspect", str(path)], r"mask/3.png: mask shape \(20, 20\) does not match image \(28, 28\)", path)


def test_image_with_an_axis_of_one_voxel(tmp_path):
    data = make_msd(tmp_path / "data", n_cases=4)
    for folder in ("imagesTr", "labelsTr"):
        write(np.ones((1, 14, 12), np.uint8), data / folder / "case_001.nii.gz", spacing=(1.0, 1.0, 1.5))
    fails(["inspect", str(data)], r"case_001.nii.gz: shape \(1, 14, 12\) has an axis of one voxel", data)


@pytest.mark.parametrize("seed", ["-1", "99999999999999999999"])
def test_seed_out_of_range(tmp_path, seed):
    data = make_msd(tmp_path / "data", n_cases=4)
    fails(["fit", str(data), "--out", str(tmp_path / "run"), "--seed", seed, "--quiet"],
           r"'random_state' parameter of Recipe must be an int in \[0, 2\*\*32 - 1\]", data)


def test_options_that_would_be_ignored(tmp_path, fitted_run):
    data = make_msd(tmp_path / "data", n_cases=4)
    fails(["fit", "--resume", str(tmp_path / "run"), "--rungs", "classical", "--budget", "1h"],
           r"--resume takes only the run folder \(and --quiet\); --rungs, --budget cannot change", data, exit_code=2)
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"")
    fails(["fit", str(data), "--out", str(tmp_path / "run"), "--rungs", "classical", "--pretrained-weights",
            str(weights)], r"--pretrained-weights applies to the transfer rungs", data, exit_code=2)
    fails(["fit", "--task", "classification", str(data), "--out", str(tmp_path / "run"), "--rungs", "vgg16",
            "--pretrained-weights", str(tmp_path / "missing.pth")], r"missing.pth: file not found", data, exit_code=2)


def test_report_of_an_unfinished_fit(fitted_run, tmp_path):
    partial = copy_run(fitted_run, tmp_path / ".run.partial")
    (partial / "state.json").write_text('{"spent_s": 1.0}')
    fails(["report", str(partial)], r"run.partial: an unfinished fit \(it holds state.json\)", partial)


def test_predict_on_a_dataset_folder_without_imagests(fitted_run, tmp_path):
    data = make_msd(tmp_path / "data", n_cases=2, seed=5)
    fails(["predict", str(fitted_run), str(data), "--out", str(tmp_path / "pred"), "--quiet"],
           r"data: a dataset folder without imagesTs/", data)


def test_model_json_edited_by_hand_or_from_another_version(fitted_run, tmp_path):
    run = copy_run(fitted_run, tmp_path / "run")
    record_path = run / "rungs" / "classical" / "model.json"
    record = json.loads(record_path.read_text())
    assert record["automed"]  # the version that wrote it
    images = make_msd(tmp_path / "newdata", n_cases=2, seed=5) / "imagesTr"
    record_path.write_text(json.dumps({**record, "automed": "0.0.9", "params": {**record["params"], "n_sigmas": 3}}))
    fails(["predict", str(run), str(images), "--out", str(tmp_path / "pred"), "--quiet"],
          r"model.json: written by automed 0.0.9, holds parameters this automed \(.*\) rejects: .*unknown key\(s\) "
          r"\['n_sigmas'\]", run)
    del record["background_weight"]
    record_path.write_text(json.dumps(record))
    fails(["predict", str(run), str(images), "--out", str(tmp_path / "pred"), "--quiet"],
          r"model.json: written by automed .*, lacks \['background_weight'\]", run)


def test_recipe_key_given_twice(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("n_folds: 3\nseed_note: x\nn_folds: 5\n")
    data = make_msd(tmp_path / "data", n_cases=4)
    fails(["fit", "--recipe", str(recipe), str(data), "--out", str(tmp_path / "run"), "--quiet"],
          r"recipe.yaml: not valid YAML \(the key 'n_folds' is given twice", data)


def test_class_folder_with_sub_folders(tmp_path):
    data = make_class_folders(tmp_path / "classes")
    (data / "benign" / "more").mkdir()
    shutil.copy(next((data / "benign").glob("*.png")), data / "benign" / "more" / "x.png")
    fails(["inspect", "--task", "classification", str(data)], r"classes/benign: holds sub-folders \['more'\]", data)
