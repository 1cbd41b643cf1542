"""The run folder's records: a rung's result and plan, written and read in one place."""

from __future__ import annotations

import json

import pytest

from automed.errors import RunFolderError
from automed.results import Cost, Estimate, RungResult, read_result, write_result
from automed.rungs.base import RungPlan
from automed.rungs.records import save_plan, saved_plan

METRIC = {"name": "auc", "mean": 0.9, "ci_low": 0.8, "ci_high": 0.95, "n": 30}


def finished() -> RungResult:
    return RungResult("cnn", "done", None, METRIC, {"a": {}, "b": {}}, {"threshold": 0.4, "test": {"auc": METRIC}},
                      Cost(12.0, 10**9, None, 1000, 0.01, "cpu", 2, 4096, 0.007, None, extra={"pretrain_seconds": 3.0}),
                      Estimate(10.0, 4096, "probe", 20.0), ("trials 6 -> 4",), None, {"config": {"lr": 1e-3}},
                      [{"case_id": "x", "label": "a", "proba": [0.6, 0.4]}], [], gain_vs_prev={"vs": "classical"})


def test_a_result_round_trips_with_its_version_and_flat_layout(tmp_path):
    assert write_result(tmp_path, finished()) == finished()
    written = json.loads((tmp_path / "result.json").read_text())
    assert written["automed"] and written["threshold"] == 0.4 and written["cost"]["pretrain_seconds"] == 3.0
    assert "stops_climb" not in written and written["shrunk"] == ["trials 6 -> 4"]
    assert read_result(tmp_path) == finished()
    assert RungResult.from_dict(written) == finished()


def test_a_result_of_an_older_layout_loads(tmp_path):
    old = {"name": "classical", "status": "done", "reason": None, "metric": METRIC, "per_class": {},
           "comparison": None, "gain_vs_baseline": None, "gain_vs_prev": None, "cost": {"fit_seconds": 3.0},
           "estimate": {"seconds": 2.0}, "shrunk": [], "postprocessing": [], "per_case": []}
    (tmp_path / "result.json").write_text(json.dumps(old))
    loaded = read_result(tmp_path)
    assert loaded.cost.fit_seconds == 3.0 and loaded.estimate.note == "" and loaded.done


@pytest.mark.parametrize("edit, message", [
    ({"status": "maybe"}, "status 'maybe'"),
    ({"cost": None}, "cost"),
    ({"cost": {"seconds": 1.0}}, "fit_seconds"),
    ({"estimate": {"seconds": 1.0, "guess": True}}, "guess"),
])
def test_a_result_this_version_cannot_read_names_the_file_and_the_version(tmp_path, edit, message):
    values = {**json.loads(json.dumps(finished().to_dict())), "automed": "0.0.9", **edit}
    (tmp_path / "result.json").write_text(json.dumps(values))
    with pytest.raises(RunFolderError, match=message) as info:
        read_result(tmp_path)
    assert str(tmp_path / "result.json") in str(info.value) and "written by automed 0.0.9" in str(info.value)


def test_a_missing_or_torn_result_is_a_damaged_run_folder(tmp_path):
    with pytest.raises(RunFolderError, match="missing"):
        read_result(tmp_path)
    (tmp_path / "result.json").write_text('{"name": "cnn", "sta')
    with pytest.raises(RunFolderError, match="not JSON"):
        read_result(tmp_path)


def test_a_plan_is_kept_for_the_resumed_fit_and_a_bad_one_is_named(tmp_path):
    assert saved_plan(tmp_path) is None
    plan = RungPlan(60.0, 2**20, "probe", ["width 32 -> 16"], None, {"n_trials": 4})
    save_plan(tmp_path, plan)
    assert saved_plan(tmp_path) == plan
    (tmp_path / "plan.json").write_text(json.dumps({"seconds": 1.0, "epochs": 3}))
    with pytest.raises(RunFolderError, match="plan.json: not a plan"):
        saved_plan(tmp_path)


def test_a_run_json_without_what_a_report_needs_names_the_file_and_the_version(fitted_run, tmp_path):
    from automed.report import write_reports
    from cli_checks import copy_run

    out = copy_run(fitted_run, tmp_path / "run")
    meta = json.loads((out / "run.json").read_text())
    del meta["hardware"]
    meta["versions"]["automed"] = "0.0.9"
    (out / "run.json").write_text(json.dumps(meta))
    with pytest.raises(RunFolderError, match=r"run.json: written by automed 0.0.9, lacks \['hardware'\]"):
        write_reports(out)


def test_a_run_record_round_trips_and_keeps_a_newer_versions_fields(tmp_path):
    from automed.run_record import RunRecord, read_run, write_run

    record = RunRecord("/data", "msd", 0, "2026-12-05T00:00:00+00:00", {"n_cores": 2}, {"automed": "0.1.0"},
                       constraints={"budget_s": 60.0}, fit_seconds=12.5, extra={"workers": ["a"]})
    write_run(tmp_path, record)
    assert json.loads((tmp_path / "run.json").read_text())["workers"] == ["a"]
    assert read_run(tmp_path) == record
    (tmp_path / "run.json").write_text("[1, 2")
    with pytest.raises(RunFolderError, match=r"run.json: not JSON"):
        read_run(tmp_path)
