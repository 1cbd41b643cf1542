"""Predicting with a run that cannot give what is asked: damaged or hand-edited model files, a skipped rung,
inputs that are not the run's channel files or a dataset without imagesTs/."""

from __future__ import annotations

import json

import pytest

from automed.errors import DataError
from cli_checks import copy_run, fails
from conftest import make_msd


@pytest.mark.parametrize("damage, message", [
    (lambda f: f.unlink(), r"model.joblib: missing, so the classical rung cannot be used, and no other finished rung"),
    (lambda f: f.write_bytes(f.read_bytes()[:100]), r"model.joblib: checksum does not match the one recorded at fit time"),
], ids=["deleted", "truncated"])
def test_predict_with_a_damaged_model_file(fitted_run, tmp_path, damage, message):
    run = copy_run(fitted_run, tmp_path / "run")
    damage(run / "rungs" / "classical" / "model.joblib")
    images = make_msd(tmp_path / "newdata", n_cases=2, seed=5) / "imagesTr"
    fails(["predict", str(run), str(images), "--out", str(tmp_path / "pred"), "--quiet"], message, run, images)
    assert not (tmp_path / "pred").exists()


def test_predict_with_a_skipped_rung(fitted_run, tmp_path):
    run = copy_run(fitted_run, tmp_path / "run")
    report = json.loads((run / "report.json").read_text())
    report["rungs"].append({"name": "unet2d", "status": "skipped", "reason": "the time budget was used up"})
    (run / "report.json").write_text(json.dumps(report))
    images = make_msd(tmp_path / "newdata", n_cases=2, seed=5) / "imagesTr"
    fails(["predict", str(run), str(images), "--out", str(tmp_path / "pred"), "--rung", "unet2d", "--quiet"],
           r"rung 'unet2d' was skipped in this run \(the time budget was used up\); fitted rungs: \['classical'\]", run)
    fails(["predict", str(run), str(images), "--out", str(tmp_path / "pred"), "--rung", "unet9d", "--quiet"],
           r"this run has no rung 'unet9d'", run)


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


def test_predict_files_that_are_not_channel_files(tmp_path):
    from automed.data.inputs import find_images

    folder = make_msd(tmp_path / "data", n_cases=3) / "imagesTr"  # case_000.nii.gz ... for a two-channel run
    with pytest.raises(DataError, match=r"case_000.nii.gz: expected a name like CASE_0000.nii.gz"):
        find_images(folder, ("T1", "T2"))
