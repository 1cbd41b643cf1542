"""A run's realised plan is recorded, and ``fit --replay`` trains it again without searching."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import automed
from automed.cli import main
from automed.errors import RunFolderError
from conftest import fit_deep

TINY = {"n_trials": 2, "max_epochs": 3, "min_epochs": 1, "iterations": 2, "widths": [8, 12], "depths": [3],
        "batch_sizes": [2], "tta": False}


@pytest.fixture(scope="module")
def searched_run(tmp_path_factory):
    # unetpp cannot train its 10,000 epochs in the budget: it is skipped, and a replay leaves it out
    return fit_deep(tmp_path_factory.mktemp("replay"), {
        "unet3d": TINY, "unetpp": {**TINY, "max_epochs": 10**4, "min_epochs": 10**4}}, budget_s=1200)


def _rung(run, name):
    return next(r for r in run.report_["rungs"] if r["name"] == name)


def test_realised_plan_records_each_rungs_plan_and_choice(searched_run):
    realised = json.loads((searched_run.folder / "realised_plan.json").read_text())
    unet3d = realised["rungs"]["unet3d"]
    details = _rung(searched_run, "unet3d")["details"]
    assert details["search"]["n_trials"] == 2  # it searched
    assert unet3d["choice"]["replay_space"]["width"] == details["config"]["width"]
    assert unet3d["choice"]["replay_epochs"] == {"fold0": details["trainings"][0]["planned_epochs"]}
    assert unet3d["plan"]["settings"]["patch"] and realised["rungs"]["classical"]["choice"]["replay_config"]
    assert realised["rungs"]["unetpp"]["status"] == "skipped" and "plan" not in realised["rungs"]["unetpp"]


def test_replay_trains_the_same_models_without_searching(searched_run, tmp_path):
    again = automed.replay(searched_run.folder, tmp_path / "again")
    assert [r["name"] for r in again.report_["rungs"]] == ["classical", "unet3d"]  # the skipped rung is left out
    meta = json.loads((again.folder / "run.json").read_text())
    assert meta["replay_of"] == str(searched_run.folder.resolve()) and meta["constraints"]["budget_s"] is None
    for name in ("classical", "unet3d"):
        before, after = _rung(searched_run, name), _rung(again, name)
        assert "replayed" in after["details"]["search"]["note"]
        config = "config" if name == "unet3d" else "model"
        assert after["details"][config] == before["details"][config]
        assert after["metric"]["mean"] == pytest.approx(before["metric"]["mean"], abs=1e-4)
    first, second = (_rung(r, "unet3d")["details"]["trainings"][0] for r in (searched_run, again))
    assert second["planned_epochs"] == first["planned_epochs"] and second["epochs"] == first["epochs"]
    assert "A replay of" in (again.folder / "report.md").read_text(encoding="utf-8")


@pytest.mark.slow  # an end-to-end fit: `make test-all` runs it
def test_replay_refuses_what_would_change_the_plan_and_old_runs(searched_run, tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["fit", "--replay", str(searched_run.folder), "--out", str(tmp_path / "x"),
                                  "--budget", "1min"])
    assert result.exit_code != 0 and "--budget would change the plan it replays" in result.output
    result = runner.invoke(main, ["fit", "--replay", str(searched_run.folder)])
    assert result.exit_code != 0 and "--replay needs --out" in result.output
    import shutil

    old = tmp_path / "old"
    shutil.copytree(searched_run.folder, old)
    (old / "realised_plan.json").unlink()
    with pytest.raises(RunFolderError, match="did not record the plan it realised"):
        automed.replay(old, tmp_path / "y")
    assert not (tmp_path / "y").exists()
