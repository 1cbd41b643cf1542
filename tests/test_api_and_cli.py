"""End to end on tiny synthetic data: fit, report contract, predict, report re-render, CLI."""

import json
import subprocess
import sys

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

import automed
from automed.cli import main
from automed.data.io import read_image
from automed.errors import DataError, RunFolderError
from conftest import FAST_PARAMS, make_folders_2d, make_msd

RUN_FILES = ("recipe.yaml", "fingerprint.json", "splits.json", "optuna.db", "report.json", "report.md",
             "report.html", "automed.log", "rungs/classical/result.json", "rungs/classical/model.joblib")


def test_run_folder_contract(fitted_run):
    for name in RUN_FILES:
        assert (fitted_run / name).is_file(), name
    report = json.loads((fitted_run / "report.json").read_text())
    for key in ("task", "dataset", "hardware", "versions", "seed", "rungs", "best_rung"):
        assert key in report
    assert report["dataset"]["n_cases"] == 10 and report["dataset"]["dims"] == 3
    rung = report["rungs"][0]
    assert rung["name"] == "classical" and rung["status"] == "done" and report["best_rung"] == "classical"
    metric = rung["metric"]
    assert metric["name"] == "dice" and metric["ci_low"] <= metric["mean"] <= metric["ci_high"]
    assert metric["mean"] > 0.6  # the blobs are easy: a broken pipeline scores near 0
    assert set(rung["per_class"]) == {"background", "left", "right", "all foreground (union)"}
    assert {"dice_mean", "hd95_mean"} <= set(rung["per_class"]["left"])
    cost = rung["cost"]
    assert cost["fit_seconds"] > 0 and cost["peak_rss_bytes"] > 0
    assert cost["peak_vram_bytes"] is None and cost["n_params"] is None
    assert cost["predict_seconds_per_case"] > 0
    assert isinstance(rung["postprocessing"], list)
    assert len(list((fitted_run / "rungs/classical/oof").iterdir())) == 10


def test_recipe_yaml_is_fully_resolved(fitted_run):
    recipe = yaml.safe_load((fitted_run / "recipe.yaml").read_text())
    assert recipe["data_format"] == "msd"
    assert recipe["rungs"][0]["params"]["num_sigma"] == 2
    assert automed.load(fitted_run).recipe.n_folds == 2


def test_splits_shared_and_complete(fitted_run):
    splits = json.loads((fitted_run / "splits.json").read_text())
    assert len(splits["folds"]) == 2
    result = json.loads((fitted_run / "rungs/classical/result.json").read_text())
    fold_of = {c["case_id"]: c["fold"] for c in result["per_case"]}
    for k, fold in enumerate(splits["folds"]):
        assert all(fold_of[c] == k for c in fold["val"])


def test_leaderboard_and_best(fitted_run):
    run = automed.load(fitted_run)
    rows = run.leaderboard()
    assert rows[0]["rung"] == "classical" and rows[0]["mean"] > 0.6
    assert run.best() == "classical"
    assert run.best(max_fit_seconds=0.001) is None


def test_predict_keeps_format_and_geometry(fitted_run, tmp_path):
    import SimpleITK as sitk

    source = tmp_path / "new"
    make_msd(tmp_path / "newdata", n_cases=2, seed=5)
    (tmp_path / "newdata" / "imagesTr").rename(source)
    image = sitk.ReadImage(str(source / "case_000.nii.gz"))
    image.SetOrigin((3.0, -2.0, 1.0))
    sitk.WriteImage(image, str(source / "case_000.nii.gz"))
    written = automed.load(fitted_run).predict(source, tmp_path / "pred")
    assert sorted(p.name for p in written) == ["case_000.nii.gz", "case_001.nii.gz"]
    mask, original = read_image(tmp_path / "pred" / "case_000.nii.gz"), read_image(source / "case_000.nii.gz")
    assert mask.array.shape == original.array.shape
    assert mask.geometry == original.geometry
    assert set(np.unique(mask.array)) <= {0, 1, 2} and (mask.array > 0).any()
    with pytest.raises(RunFolderError, match="pred: predictions folder already exists"):
        automed.load(fitted_run).predict(source, tmp_path / "pred")


def test_report_rerenders_from_run_folder(fitted_run, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(fitted_run, copy)
    for name in ("report.json", "report.md", "report.html"):
        (copy / name).unlink()
    result = CliRunner().invoke(main, ["report", str(copy)])
    assert result.exit_code == 0, result.output
    assert "Use **classical**" in (copy / "report.md").read_text()
    html = (copy / "report.html").read_text()
    assert "data:image/png;base64" in html and "Leaderboard" in html


def test_fit_2d_png_cli_and_predict_in_same_format(tmp_path):
    data = make_folders_2d(tmp_path / "em", n_cases=6)
    recipe = automed.Recipe(n_folds=2, n_jobs=1, include_background=True,
                            rungs=[{"name": "classical", "params": FAST_PARAMS}])
    recipe_path = tmp_path / "r.yaml"
    recipe.to_yaml(recipe_path)
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["fit", str(data), "--recipe", str(recipe_path), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "classical" in result.output
    report = json.loads((out / "report.json").read_text())
    assert report["dataset"]["label_mapping"] == {"0": 0, "255": 1}
    assert report["rungs"][0]["metric"]["classes"] == ["background", "label_255"]
    result = CliRunner().invoke(main, ["predict", str(out), str(data / "images"), "--out", str(tmp_path / "p"), "--quiet"])
    assert result.exit_code == 0, result.output
    mask = read_image(tmp_path / "p" / "0.png").array
    assert mask.shape == (32, 32) and set(np.unique(mask)) <= {0, 255}
    again = CliRunner().invoke(main, ["fit", str(data), "--recipe", str(recipe_path), "--out", str(out), "--quiet"])
    assert again.exit_code == 1 and "run folder already exists" in again.output


@pytest.mark.slow  # an end-to-end fit: `make test-all` runs it
def test_same_recipe_and_seed_same_result(fitted_run, tmp_path):
    data = tmp_path / "data"
    make_msd(data, n_cases=10)
    recipe = automed.load(fitted_run).recipe
    automed.fit(recipe, data, tmp_path / "again", progress=False)
    first = json.loads((fitted_run / "rungs/classical/result.json").read_text())["per_case"]
    second = json.loads((tmp_path / "again/rungs/classical/result.json").read_text())["per_case"]
    assert first == second


@pytest.mark.slow  # an end-to-end fit: `make test-all` runs it
def test_overwrite_replaces_only_after_success(fitted_run, tmp_path):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(fitted_run, out)
    bad = make_msd(tmp_path / "bad", n_cases=4)
    (bad / "imagesTr" / "case_000.nii.gz").write_bytes(b"")
    with pytest.raises(DataError):
        automed.fit(automed.Recipe(n_folds=2), bad, out, overwrite=True, progress=False)
    assert (out / "report.json").is_file()  # the old run survives a failed overwrite


def test_import_and_help_do_not_import_torch():
    code = ("import sys, automed; automed.Recipe(); from automed.cli import main; "
            "assert 'torch' not in sys.modules and 'lightgbm' not in sys.modules, 'heavy import'")
    subprocess.run([sys.executable, "-c", code], check=True)
    result = subprocess.run([sys.executable, "-m", "automed", "--help"], capture_output=True, text=True, check=True)
    assert "fit" in result.stdout


@pytest.mark.slow  # an end-to-end fit: `make test-all` runs it
def test_uncached_features_give_the_same_result(fitted_run, tmp_path):
    data = make_msd(tmp_path / "data", n_cases=10)
    recipe = automed.Recipe(task="segmentation", n_folds=2, n_jobs=1, rungs=[
        {"name": "classical", "params": {**FAST_PARAMS, "feature_cache_gb": 0.0, "slab_voxels": 10_000}}])
    automed.fit(recipe, data, tmp_path / "uncached", progress=False)
    cached = json.loads((fitted_run / "rungs/classical/result.json").read_text())["metric"]["mean"]
    uncached = json.loads((tmp_path / "uncached/rungs/classical/result.json").read_text())["metric"]["mean"]
    assert uncached == pytest.approx(cached, abs=0.01)
