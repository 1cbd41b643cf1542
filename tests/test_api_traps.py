"""The Python API and CLI without traps: public names, predict inputs, skipped rungs, what a run records,
and Optuna studies that describe themselves."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import automed
from automed.cli import main
from automed.data.listing import listing_checksum
from automed.errors import DataError, RunFolderError
from conftest import FAST_PARAMS, make_folders_2d, make_msd


def test_public_names_are_visible():
    assert {"Recipe", "Run", "fit", "load"} <= set(dir(automed))
    assert all(hasattr(automed, name) for name in automed.__all__)


def test_predict_takes_a_list_of_files_and_overwrite_from_python(fitted_run, tmp_path):
    make_msd(tmp_path / "new", n_cases=3, seed=7)
    files = sorted((tmp_path / "new" / "imagesTr").iterdir())[:2]
    run = automed.load(fitted_run)
    written = run.predict([str(f) for f in files], out=tmp_path / "pred")
    assert sorted(p.name for p in written) == [f.name for f in files]
    record = json.loads((tmp_path / "pred" / ".automed-predictions.json").read_text())
    assert record["inputs"] == [str(f.resolve()) for f in files]
    with pytest.raises(RunFolderError, match=r"overwrite=True"):
        run.predict(files, out=tmp_path / "pred")
    assert len(run.predict(files[:1], out=tmp_path / "pred", overwrite=True)) == 1
    (tmp_path / "other").mkdir()
    twin = tmp_path / "other" / files[0].name
    twin.write_bytes(files[0].read_bytes())
    with pytest.raises(DataError, match="named as the same case"):
        run.predict([files[0], twin], out=tmp_path / "pred2")
    with pytest.raises(DataError, match="missing.nii.gz: not found"):
        run.predict([files[0], tmp_path / "missing.nii.gz"], out=tmp_path / "pred3")
    assert not (tmp_path / "pred2").exists() and not (tmp_path / "pred3").exists()


def test_cli_predicts_several_files(fitted_run, tmp_path):
    make_msd(tmp_path / "new", n_cases=2, seed=8)
    files = [str(f) for f in sorted((tmp_path / "new" / "imagesTr").iterdir())]
    result = CliRunner().invoke(main, ["predict", str(fitted_run), *files, "--out", str(tmp_path / "pred"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "Wrote 2 file(s)" in result.output


@pytest.mark.slow  # an end-to-end fit: `make test-all` runs it
def test_predict_with_a_skipped_rung_is_one_clear_error(tmp_path):
    data = make_folders_2d(tmp_path / "em", n_cases=6)
    recipe = automed.Recipe(n_folds=2, n_jobs=1, rungs=[{"name": "classical", "params": FAST_PARAMS},
                                                       {"name": "unet3d", "params": {}}])
    run = automed.fit(recipe, data, tmp_path / "run", progress=False)
    assert next(r for r in run.report_["rungs"] if r["name"] == "unet3d")["status"] == "skipped"
    for rung in ("unet3d", "unetpp"):
        result = CliRunner().invoke(main, ["predict", str(run.folder), str(data / "images"), "--rung", rung,
                                           "--out", str(tmp_path / rung)])
        assert result.exit_code != 0 and "Traceback" not in result.output, result.output
        assert ("was skipped in this run" if rung == "unet3d" else "has no rung 'unetpp'") in result.output
        assert "fitted rungs: ['classical']" in result.output or rung == "unetpp"
        assert not (tmp_path / rung).exists()


def test_run_json_records_code_command_workers_and_data(fitted_run):
    meta = json.loads((fitted_run / "run.json").read_text())
    assert meta["n_jobs"] == 1 and meta["command_line"]
    listing = meta["dataset_listing"]
    data = fitted_run.parent / "data"
    assert listing == listing_checksum(data) and listing["n_files"] == len([p for p in data.rglob("*") if p.is_file()])
    assert len(listing["sha256"]) == 64
    commit = meta["automed_commit"]
    assert commit is None or (len(commit["sha"]) == 40 and isinstance(commit["dirty"], bool))
    hardware = meta["hardware"]
    assert hardware["architecture"] and hardware["cpu"]
    report = json.loads((fitted_run / "report.json").read_text())
    assert report["dataset_listing"] == listing and report["n_jobs"] == 1
    assert "listing SHA-256 " + listing["sha256"][:16] in (fitted_run / "report.md").read_text(encoding="utf-8")


def test_listing_checksum_changes_with_names_and_sizes_not_hidden_files(tmp_path):
    (tmp_path / "a.nii.gz").write_bytes(b"12345")
    first = listing_checksum(tmp_path)
    (tmp_path / ".DS_Store").write_bytes(b"x")
    assert listing_checksum(tmp_path) == first
    (tmp_path / "a.nii.gz").write_bytes(b"123456")
    assert listing_checksum(tmp_path)["sha256"] != first["sha256"]
    (tmp_path / "a.nii.gz").rename(tmp_path / "b.nii.gz")
    assert listing_checksum(tmp_path)["n_files"] == 1 and listing_checksum(tmp_path)["bytes"] == 6


def test_optuna_studies_name_their_metric_and_rung(fitted_run):
    run_id = json.loads((fitted_run / "run.json").read_text())["run_id"]
    study = automed.load(fitted_run).study("classical")
    assert study.study_name == f"{run_id}:classical"  # two runs sharing a database never share a study
    assert study.metric_names == ["dice"]
    assert study.user_attrs["rung"] == "classical" and study.user_attrs["task"] == "segmentation"
    assert study.user_attrs["direction"] == "maximize" and "inner validation" in study.user_attrs["measured_on"]
