"""Deep segmentation rungs on tiny synthetic data: fit, judge, skip, shrink, stop, resume."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from click.testing import CliRunner

import automed
import automed.rungs
from automed.cli import main
from automed.errors import RunFolderError
from automed.results import Cost, RungResult
from conftest import FAST_PARAMS, make_folders_2d, make_msd

TINY = {"n_trials": 2, "max_epochs": 3, "min_epochs": 1, "iterations": 2, "widths": [8], "depths": [3],
        "batch_sizes": [2], "tta": False}


def _recipe(*rungs, **changes):
    specs = [{"name": "classical", "params": FAST_PARAMS}] + [{"name": r, "params": TINY} for r in rungs]
    return automed.Recipe(n_folds=2, n_jobs=1, rungs=specs, **changes)


def _result(run_folder, name):
    return json.loads((run_folder / "rungs" / name / "result.json").read_text())


@pytest.fixture(scope="module")
def toy3d(tmp_path_factory):
    return make_msd(tmp_path_factory.mktemp("toy3d"), n_cases=8, shape=(16, 20, 16))


def test_unet2d_on_volumes_is_judged_against_classical_and_predicts(toy3d, tmp_path):
    import torch

    run = automed.fit(_recipe("unet2d", full_ladder=True), toy3d, tmp_path / "run", progress=False)
    result = _result(run.folder, "unet2d")
    folds = json.loads((run.folder / "splits.json").read_text())["folds"]
    assert result["status"] == "done"
    assert {c["case_id"] for c in result["per_case"]} == set(folds[0]["val"])
    assert result["comparison"]["n"] == len(folds[0]["val"])
    gain = result["gain_vs_baseline"]
    assert gain["vs"] == "classical" and gain["ci_low"] <= gain["mean"] <= gain["ci_high"]
    classical = {c["case_id"]: c for c in _result(run.folder, "classical")["per_case"]}
    mine = {c["case_id"]: np.mean([c["scores"][k]["dice"] for k in ("1", "2")]) for c in result["per_case"]}
    theirs = {k: np.mean([classical[k]["scores"][c]["dice"] for c in ("1", "2")]) for k in mine}
    assert gain["mean"] == pytest.approx(np.mean([mine[k] - theirs[k] for k in mine]))
    cost = result["cost"]
    assert cost["n_trials"] == 2 and cost["n_params"] > 0 and cost["est_train_vram_bytes"] > 0
    assert cost["core_hours"] > 0 and cost["gpu_hours"] is None and cost["device"] == "cpu"
    assert cost["search_seconds"] > 0 and cost["final_fit_seconds"] > 0
    throughput = result["details"]["throughput"]
    assert throughput["steps"] == sum(t["steps"] for t in result["details"]["trainings"]) > 0
    assert throughput["steps_per_second"] > 0 and throughput["voxels_per_second"] > 0
    assert 0 < throughput["data_share"] < 1 and throughput["flops_per_voxel"] > 0
    peak = json.loads((run.folder / "run.json").read_text())["compute_peak"]
    assert peak["matmul_fp32_gflops"] > 0 and peak["threads"] >= 1 and throughput["peak"] == peak
    assert 0 < throughput["fraction_of_matmul_peak"] < 1.5  # a network step reaches some share of dense peak
    assert "Training throughput:" in (run.folder / "report.md").read_text(encoding="utf-8")
    assert result["details"]["slice_axis"] == 0  # make_msd writes 1.5 mm along z: array axis 0
    assert not (run.folder / "rungs/unet2d/final").exists() and not (run.folder / "rungs/unet2d/trials").exists()
    weights = torch.load(run.folder / "rungs/unet2d/model_fold0.pt", weights_only=True)
    assert "model" in weights
    written = run.predict(toy3d / "imagesTr", tmp_path / "pred", rung="unet2d")
    assert len(written) == 8
    from automed.data.io import read_image

    mask = read_image(written[0]).array
    assert mask.shape == (16, 20, 16) and set(np.unique(mask)) <= {0, 1, 2}
    assert "unet2d" in (run.folder / "report.md").read_text(encoding="utf-8")
    quality = json.loads((run.folder / "quality.json").read_text())["rungs"]
    assert "entropy" in quality["unet2d"]["component_auc"]  # from the fold-0 models, on fold 0's held-out cases
    assert "entropy" not in quality["classical"]["component_auc"]  # one model refitted on all: in-sample
    rows = (tmp_path / "pred" / "quality.csv").read_text().splitlines()
    assert rows[0].startswith("case,flag,quality_score,distance_percentile,distance,entropy,structure")
    assert len(rows) == 9


@pytest.mark.slow  # an end-to-end fit: `make test-all` runs it
def test_3d_network_skipped_on_2d_data_and_unetpp_runs(tmp_path):
    data = make_folders_2d(tmp_path / "em", n_cases=6)
    recipe = _recipe("unetpp", "unet3d", full_ladder=True, include_background=True)
    recipe = recipe.replace(rungs=(recipe.rungs[0], {"name": "unetpp", "params": {**TINY, "n_trials": 0}},
                                   recipe.rungs[2]))
    run = automed.fit(recipe, data, tmp_path / "run", progress=False)
    unetpp = _result(run.folder, "unetpp")
    assert unetpp["status"] == "done" and unetpp["details"]["search"]["n_trials"] == 0
    assert unetpp["details"]["search"]["inner_validation_cases"] >= 1  # for an ensemble's estimate
    skipped = _result(run.folder, "unet3d")
    assert skipped["status"] == "skipped" and "2D" in skipped["reason"]
    assert "unet3d" in (run.folder / "report.md").read_text(encoding="utf-8")


@pytest.mark.slow  # an end-to-end fit: `make test-all` runs it
def test_cv_full_trains_every_fold_and_predicts_with_their_average(toy3d, tmp_path):
    recipe = automed.Recipe(n_folds=2, n_jobs=1, cv="full", rungs=[{"name": "unet3d", "params": TINY}])
    run = automed.fit(recipe, toy3d, tmp_path / "run", progress=False)
    result = _result(run.folder, "unet3d")
    assert sorted(c["fold"] for c in result["per_case"]) == [0] * 4 + [1] * 4
    assert result["comparison"]["n"] == 8 and result["comparison"]["cases"] == "every case (all folds)"
    assert len(result["details"]["trainings"]) == 2
    assert (run.folder / "rungs/unet3d/model_fold1.pt").is_file()
    rung = automed.rungs.rung_class("unet3d", "segmentation").load(run.folder / "rungs/unet3d")
    assert len(rung.models_) == 2
    image = np.zeros((1, 16, 20, 16), dtype=np.float32)
    assert rung.predict(image).shape == (16, 20, 16)


@pytest.mark.slow  # an end-to-end fit: `make test-all` runs it
def test_members_hold_out_different_cases_and_predict_with_their_mean(toy3d, tmp_path):
    specs = [{"name": "unet2d", "params": TINY}, {"name": "unet3d", "params": {**TINY, "members": 2}}, "ensemble"]
    run = automed.fit(automed.Recipe(n_folds=2, n_jobs=1, rungs=specs, full_ladder=True), toy3d, tmp_path / "run",
                      progress=False)
    trainings = _result(run.folder, "unet3d")["details"]["trainings"]
    assert [(t["fold"], t["member"], t["key"]) for t in trainings] == [(0, 0, "fold0"), (0, 1, "fold0_1")]
    rung = automed.rungs.rung_class("unet3d", "segmentation").load(run.folder / "rungs/unet3d")
    assert len(rung.models_) == 2 and (run.folder / "rungs/unet3d/model_fold0_1.pt").is_file()
    image = np.random.default_rng(0).normal(size=(1, 16, 20, 16)).astype(np.float32)
    each = [rung._mean_proba([m], rung.config_, image, rung.device_) for m in rung.models_]
    assert not np.allclose(each[0], each[1])  # other seeds, other training cases
    assert np.allclose(rung.predict_proba(image), np.mean(each, axis=0), atol=1e-6)
    assert np.allclose(rung.predict_proba(image, fold=0), rung.predict_proba(image), atol=1e-6)
    # every case one member validated on, the other trained on: the ensemble has none to choose on
    ensemble = _result(run.folder, "ensemble")
    assert ensemble["status"] == "skipped" and "one model per fold" in ensemble["reason"]


@pytest.mark.slow  # an end-to-end fit: `make test-all` runs it
def test_rung_that_cannot_fit_its_allotment_is_skipped_with_the_estimate(toy3d, tmp_path):
    slow = {**TINY, "min_epochs": 500, "max_epochs": 500, "iterations": 50, "widths": [32]}
    recipe = automed.Recipe(n_folds=2, n_jobs=1, budget_s=20, rungs=[{"name": "unet3d", "params": slow}])
    run = automed.fit(recipe, toy3d, tmp_path / "run", progress=False)
    result = _result(run.folder, "unet3d")
    assert result["status"] == "skipped"
    assert "estimated" in result["reason"] and "allotted" in result["reason"]
    assert result["estimate"]["seconds"] > 20 and 0 < result["estimate"]["allotted_seconds"] <= 20
    assert [s.split(" to ")[0] for s in result["shrunk"]] == ["width 32 -> 16", "width 16 -> 8"]


@pytest.mark.slow  # an end-to-end fit: `make test-all` runs it
def test_a_timed_final_training_runs_its_decay_to_the_end_while_trials_stop_early(toy3d, tmp_path, monkeypatch):
    from automed.deep import training

    schedules = {}
    real_train = training.train

    def spy(config, schedule, source, val, axis, n_classes, n_channels, folder, *args, **kwargs):
        schedules[folder.parent.name] = schedule
        return real_train(config, schedule, source, val, axis, n_classes, n_channels, folder, *args, **kwargs)

    monkeypatch.setattr(training, "train", spy)
    params = {**TINY, "max_epochs": 12, "min_epochs": 2, "patience_fraction": 0.25}
    recipe = automed.Recipe(n_folds=2, n_jobs=1, budget_s=300, rungs=[{"name": "unet2d", "params": params}])
    run = automed.fit(recipe, toy3d, tmp_path / "run", progress=False)
    assert _result(run.folder, "unet2d")["status"] == "done"
    assert schedules["trials"].patience is not None  # a search trial that stops gaining frees the search's time
    assert schedules["final"].patience is None  # the time is the final training's anyway: no early stop


@pytest.mark.slow  # an end-to-end fit: `make test-all` runs it
def test_memory_limit_shrinks_then_skips(toy3d, tmp_path):
    params = {**TINY, "batch_sizes": [2, 4], "widths": [8, 16]}
    recipe = automed.Recipe(n_folds=2, n_jobs=1, max_vram_bytes=2**20, rungs=[{"name": "unet3d", "params": params}])
    run = automed.fit(recipe, toy3d, tmp_path / "run", progress=False)
    result = _result(run.folder, "unet3d")
    assert result["status"] == "skipped" and "GiB limit" in result["reason"]
    assert any(s.startswith("batch 4 -> 2") for s in result["shrunk"])
    assert any(s.startswith("width 16 -> 8") for s in result["shrunk"])


@pytest.mark.slow  # an end-to-end fit: `make test-all` runs it
def test_climbing_stops_when_a_rung_is_confidently_no_better(toy3d, tmp_path):
    recipe = _recipe("unet2d", "unetpp")
    recipe = recipe.replace(rungs=(*recipe.rungs, "ensemble"))
    run = automed.fit(recipe, toy3d, tmp_path / "run", progress=False)
    # A 3-epoch toy U-Net is far below the near-perfect classical rung on these blobs.
    assert _result(run.folder, "unet2d")["gain_vs_prev"]["ci_high"] < 0.005
    stopped = _result(run.folder, "unetpp")
    assert stopped["status"] == "skipped" and stopped["reason"].startswith("climbing stopped after unet2d")
    assert run.report_["stopped_early"] == stopped["reason"]
    # An ensemble still runs after the climb stopped, but needs two deep rungs.
    ensemble = _result(run.folder, "ensemble")
    assert ensemble["status"] == "skipped" and "found: unet2d" in ensemble["reason"]


def test_a_2d_network_losing_does_not_stop_the_3d_networks(toy3d, tmp_path):
    from automed.ladder.runner import _note_stop
    from automed.rungs import rung_class

    stopped = {}
    _note_stop(stopped, rung_class("unet2d", "segmentation"),
               RungResult("unet2d", "done", stops_climb="climbing stopped after unet2d"))
    assert set(stopped) == {"2D networks"}
    assert rung_class("unetpp", "segmentation").climb_family() in stopped
    assert rung_class("unet3d", "segmentation").climb_family() not in stopped


@pytest.mark.slow  # an end-to-end fit: `make test-all` runs it
def test_ensemble_averages_the_deep_rungs_softmax_chosen_on_inner_validation(toy3d, tmp_path):
    from automed.data.fingerprint import Fingerprint
    from automed.data.io import read_image
    from automed.data.normalize import normalize
    from automed.models.postprocess import apply_postprocessing
    from automed.rungs import rung_class

    recipe = _recipe("unet2d", "unet3d", "unetpp", full_ladder=True)
    run = automed.fit(recipe.replace(rungs=(*recipe.rungs, "ensemble")), toy3d, tmp_path / "run", progress=False)
    result = _result(run.folder, "ensemble")
    details = result["details"]
    assert result["status"] == "done" and details["candidates"] == ["unet2d", "unet3d", "unetpp"]
    selection = details["selection"]
    assert set(selection) == {"unet2d+unet3d", "unet2d+unetpp", "unet3d+unetpp", "unet2d+unet3d+unetpp"}
    best = max(selection.values())
    chosen = min((k for k, v in selection.items() if v == best), key=lambda k: k.count("+"))
    assert "+".join(details["members"]) == chosen
    inner = _result(run.folder, "unet2d")["details"]["search"]["inner_validation_cases"]
    assert details["n_validation_cases"] == inner > 0  # the deep rungs' shared inner validation cases
    assert "Members chosen by mean Dice after post-processing" in (run.folder / "report.md").read_text(encoding="utf-8")
    members = [_result(run.folder, n) for n in details["members"]]
    assert {c["case_id"] for c in result["per_case"]} == {c["case_id"] for c in members[0]["per_case"]}
    assert result["gain_vs_baseline"]["vs"] == "classical"
    cost = result["cost"]
    assert cost["fit_seconds"] > sum(m["cost"]["fit_seconds"] for m in members)
    assert cost["n_params"] == sum(m["cost"]["n_params"] for m in members)

    # Its masks are the argmax of the members' mean softmax, post-processed; predicting gives the same.
    fp = Fingerprint.from_dict(json.loads((run.folder / "fingerprint.json").read_text()))
    case_id = result["per_case"][0]["case_id"]
    image = normalize(read_image(toy3d / "imagesTr" / f"{case_id}.nii.gz").array[None], fp).astype(np.float32)
    loaded = [rung_class(n, "segmentation").load(run.folder / "rungs" / n) for n in details["members"]]
    expected = apply_postprocessing(np.mean([m.predict_proba(image, fold=0) for m in loaded], axis=0).argmax(0),
                                    result["postprocessing"])
    assert np.array_equal(read_image(run.folder / "rungs/ensemble/oof" / f"{case_id}.nii.gz").array, expected)
    written = run.predict(toy3d / "imagesTr", tmp_path / "pred", rung="ensemble")
    assert len(written) == 8
    assert np.array_equal(read_image(tmp_path / "pred" / f"{case_id}.nii.gz").array, expected)


@pytest.mark.slow  # an end-to-end fit: `make test-all` runs it
def test_on_2d_data_a_3d_rung_takes_no_share_of_the_budget(tmp_path):
    from types import SimpleNamespace

    from conftest import make_folders_2d

    from automed.rungs import rung_class

    flat, volume = SimpleNamespace(dims=2), SimpleNamespace(dims=3)
    unet3d = rung_class("unet3d", "segmentation")
    assert not unet3d.applies_to(flat) and unet3d.applies_to(volume) and rung_class("unet2d", "segmentation").applies_to(flat)
    tiny = {"n_trials": 0, "max_epochs": 1, "min_epochs": 1, "iterations": 2, "widths": [8], "depths": [3],
            "batch_sizes": [2], "tta": False}
    recipe = automed.Recipe(n_folds=2, n_jobs=1, budget_s=600, full_ladder=True,
                            rungs=[{"name": "unet2d", "params": tiny}, {"name": "unet3d", "params": tiny}])
    run = automed.fit(recipe, make_folders_2d(tmp_path / "em"), tmp_path / "run", progress=False)
    allotted = json.loads((run.folder / "rungs/unet2d/result.json").read_text())["estimate"]["allotted_seconds"]
    assert allotted > 550  # all of the budget (less set-up), not the 2/8 it shared with unet3d
    assert json.loads((run.folder / "rungs/unet3d/result.json").read_text())["status"] == "skipped"


def test_rungs_below_an_ensemble_hold_back_its_estimate_instead_of_sharing_with_it(tmp_path):
    from automed.ladder.runner import _allotment
    from automed.rungs import rung_class
    from automed.rungs.base import FitContext

    unet2d, unet3d, unetpp, ensemble = (rung_class(n, "segmentation") for n in ("unet2d", "unet3d", "unetpp",
                                                                                 "ensemble"))
    assert _allotment(1000.0, [unetpp, ensemble], 100.0) == 900.0
    assert _allotment(1000.0, [unet3d, unetpp, ensemble], 100.0) == pytest.approx(900.0 * 6 / 8)
    assert _allotment(50.0, [ensemble], 0.0) == 50.0 and _allotment(None, [unet2d, ensemble], 0.0) is None
    assert _allotment(50.0, [unet2d], 80.0) == 0.0

    # unet2d finished, predicting 0.5 s per case: the pending deep rungs are expected to predict as fast
    finished = (RungResult("classical", "done", cost=Cost(1.0, predict_seconds_per_case=9.0)),
                RungResult("unet2d", "done", cost=Cost(1.0, predict_seconds_per_case=0.5),
                           details={"search": {"inner_validation_cases": 5}}))
    folds = [{"train": ["a", "b", "c"], "val": ["d", "e"]}, {"train": ["d", "e"], "val": ["a", "b", "c"]}]
    context = FitContext(None, None, folds, tmp_path / "ensemble", 0, 1, None, "", finished=finished)
    n_cases = 5 + 2  # unet2d's inner validation cases + fold 0's comparison cases

    def held_back(pending, **params):
        return ensemble(ensemble.Params(**params)).reserve_seconds(context, pending)

    assert held_back(["unet3d", "unetpp"]) == pytest.approx(10 + 1.2 * 3 * 0.5 * n_cases)
    assert held_back(["unet3d"]) == pytest.approx(10 + 1.2 * 2 * 0.5 * n_cases)
    assert held_back(["unet3d", "unetpp"], members=("unet2d", "unetpp")) == pytest.approx(10 + 1.2 * 2 * 0.5 * n_cases)
    assert held_back([]) == 0.0  # one member only: the ensemble will be skipped
    assert ensemble().reserve_seconds(FitContext(None, None, folds, tmp_path, 0, 1, None, ""), ["unet2d"]) == 0.0


def test_training_resumed_from_last_checkpoint_continues_identically(toy3d, tmp_path):
    from automed.data.dataset import open_dataset
    from automed.data.fingerprint import compute_fingerprint
    from automed.deep.inference import pick_device
    from automed.deep.training import NetConfig, Schedule, train
    from automed.deep.volumes import SampleSource, load_volumes

    dataset = open_dataset(toy3d)
    fp = compute_fingerprint(dataset)
    volumes = load_volumes(dataset, fp, [c.case_id for c in dataset.cases])
    ids = sorted(volumes)
    source = SampleSource({k: volumes[k] for k in ids[:6]}, axis=2)
    config = NetConfig("automed.nets.unet:UNet", 2, 8, {"depth": 3, "res_units": 0}, "dice_ce", 3e-3, 4, "medium",
                       (16, 32))
    schedule = Schedule(max_epochs=4, iterations=3, patience=10)
    args = (config, schedule, source, [volumes[k] for k in ids[6:]], 2, 3, 1)
    whole = train(*args, tmp_path / "whole", 0, pick_device(), False)

    def interrupt(epoch, value):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(*args, tmp_path / "split", 0, pick_device(), False, None, interrupt)
    resumed = train(*args, tmp_path / "split", 0, pick_device(), False)
    assert resumed.epochs == whole.epochs == 4
    np.testing.assert_allclose(resumed.history, whole.history, atol=1e-4)


KILLER = textwrap.dedent('''
    import os, signal, sys
    import automed
    import automed.deep.training as training

    original, calls = training.train, []

    def train_then_die(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the second Optuna trial: SIGKILL once its second epoch is checkpointed
            report = args[12]

            def on_epoch(epoch, value):
                report(epoch, value)
                if epoch == 1:
                    os.kill(os.getpid(), signal.SIGKILL)
            args = args[:12] + (on_epoch,)
        return original(*args, **kwargs)

    training.train = train_then_die
    automed.fit(automed.Recipe.from_yaml(sys.argv[1]), sys.argv[2], sys.argv[3], progress=False)
''')


def _trials(db):
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT t.number, t.state, t.datetime_complete FROM trials t JOIN studies s "
                           "ON t.study_id = s.study_id WHERE s.study_name = 'unet2d' ORDER BY t.number").fetchall()
    return rows


@pytest.mark.slow  # an end-to-end fit: `make test-all` runs it
def test_sigkill_in_a_deep_rung_then_resume_recomputes_nothing(toy3d, tmp_path):
    params = {**TINY, "n_trials": 2, "min_epochs": 4, "max_epochs": 6}
    recipe = automed.Recipe(n_folds=2, n_jobs=1, full_ladder=True,
                            rungs=[{"name": "classical", "params": FAST_PARAMS}, {"name": "unet2d", "params": params}])
    recipe.to_yaml(tmp_path / "recipe.yaml")
    (tmp_path / "killer.py").write_text(KILLER)
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, str(tmp_path / "killer.py"), str(tmp_path / "recipe.yaml"), str(toy3d),
                           str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == -9, proc.stderr[-3000:]
    staging = tmp_path / ".run.partial"
    assert not out.exists() and (staging / "state.json").is_file()
    assert (staging / "rungs/unet2d/trials/1/last.pt").is_file()
    before = _trials(staging / "optuna.db")
    assert [(n, s) for n, s, _ in before] == [(0, "COMPLETE"), (1, "RUNNING")]
    classical = (staging / "rungs/classical/result.json").read_text()

    with pytest.raises(RunFolderError, match="--resume"):
        automed.fit(recipe, toy3d, out, progress=False)
    result = CliRunner().invoke(main, ["fit", "--resume", str(out), "--quiet"])
    assert result.exit_code == 0, result.output

    after = _trials(out / "optuna.db")
    assert after[0] == before[0]  # the finished trial was kept, not run again
    assert [(n, s) for n, s, _ in after] == [(0, "COMPLETE"), (1, "FAIL"), (2, "COMPLETE")]
    log = (out / "automed.log").read_text()
    assert "resumed training in" in log and "at epoch 2" in log
    assert (out / "rungs/classical/result.json").read_text() == classical
    assert _result(out, "unet2d")["cost"]["n_trials"] == 2
    assert not staging.exists()
    again = CliRunner().invoke(main, ["fit", "--resume", str(out), "--quiet"])
    assert again.exit_code == 1 and "no interrupted fit" in again.output


def test_slice_axis_is_the_coarsest_then_the_shortest():
    from types import SimpleNamespace

    from automed.deep.volumes import slice_axis

    assert slice_axis(SimpleNamespace(median_spacing=(1.0, 1.0, 3.0), median_shape=(100, 100, 20))) == 2
    assert slice_axis(SimpleNamespace(median_spacing=(1.0, 1.0, 1.0), median_shape=(36, 50, 35))) == 2
    assert slice_axis(SimpleNamespace(median_spacing=(2.0, 1.0, 2.0), median_shape=(30, 50, 60))) == 0


def test_paired_gain_uses_shared_cases_only():
    from automed.statistics import paired_gain

    gain = paired_gain({"a": 0.5, "b": 0.6, "c": 0.7}, {"a": 0.6, "b": 0.7, "d": 0.0})
    assert gain["n"] == 2 and gain["mean"] == pytest.approx(0.1)
    assert paired_gain({"a": 0.5}, {"b": 0.5}) is None


def test_patch_is_the_median_size_rounded_to_each_networks_divisor():
    from types import SimpleNamespace

    from automed.rungs import rung_class

    UNet3DRung, UNetPlusPlusRung = rung_class("unet3d", "segmentation"), rung_class("unetpp", "segmentation")

    shapes = [(34, 48, 33), (36, 50, 35), (47, 59, 43)]  # median 36 x 50 x 35
    fingerprint = SimpleNamespace(cases=[{"shape": s} for s in shapes])
    rung = UNet3DRung()
    settings = {"patch": rung._patch(fingerprint, None)}
    assert settings["patch"] == [36, 50, 35]
    space = {"width": 16, "res_units": 2, "loss": "dice_ce", "lr": 3e-3, "batch_size": 4, "augmentation": "medium"}
    assert rung._config({**space, "depth": 4}, settings).patch == (40, 56, 40)  # divisor 8
    assert rung._config({**space, "depth": 5}, settings).patch == (48, 64, 48)  # divisor 16
    capped = UNet3DRung(rung.Params(max_patch=40))
    assert capped._config({**space, "depth": 5}, settings).patch == (32, 32, 32)  # cap 40 floored to 16s
    assert UNetPlusPlusRung()._patch(fingerprint, 0) == [50, 35]
    assert UNetPlusPlusRung()._config(space, {"patch": [50, 35]}).patch == (64, 48)


@pytest.mark.parametrize("depth", [4, 5])
def test_small_images_get_a_patch_that_keeps_two_voxels_at_the_deepest_level(depth):
    """12-pixel slices with a depth-5 U-Net used to reach a 1 x 1 bottleneck, where instance norm fails."""
    import torch

    from automed.nets import build_network
    from automed.rungs import rung_class

    space = {"width": 8, "res_units": 2, "loss": "dice_ce", "lr": 3e-3, "batch_size": 2, "augmentation": "medium",
             "depth": depth}
    config = rung_class("unet2d", "segmentation")()._config(space, {"patch": [12, 10]})
    assert config.patch == (2 ** depth,) * 2
    network = build_network(config, 1, 3).train()
    assert network(torch.zeros(2, 1, *config.patch)).shape == (2, 3, *config.patch)


@pytest.mark.slow  # an end-to-end fit: `make test-all` runs it
def test_unet3d_trains_on_windows_of_larger_volumes_and_can_predict_without_mirroring(tmp_path, caplog):
    from automed.data.io import read_image
    from automed.ladder.predict import _load_rung

    data = make_msd(tmp_path / "data", n_cases=6, shape=(24, 28, 24))
    params = {**TINY, "n_trials": 0, "max_patch": 16, "tta": True}
    recipe = automed.Recipe(n_folds=2, n_jobs=1, full_ladder=True, rungs=[
        {"name": "classical", "params": FAST_PARAMS}, {"name": "unet3d", "params": params}])
    run = automed.fit(recipe, data, tmp_path / "run", progress=False)
    result = _result(run.folder, "unet3d")
    assert result["status"] == "done" and result["details"]["config"]["patch"] == [16, 16, 16]
    assert not (run.folder / "cache" / "volumes").exists(), "the memory-mapped cases go when the fit ends"
    with caplog.at_level("INFO", logger="automed"):
        plain = run.predict(data / "imagesTr", tmp_path / "plain", rung="unet3d", tta=False)
    assert "without mirrored test-time augmentation" in caplog.text
    mirrored = run.predict(data / "imagesTr", tmp_path / "mirrored", rung="unet3d")
    assert _load_rung(run.folder, "unet3d", "segmentation").params.tta
    assert _load_rung(run.folder, "unet3d", "segmentation", tta=False).params.tta is False
    assert all(read_image(p).array.shape == (24, 28, 24) for p in plain + mirrored)
    cli = CliRunner().invoke(main, ["predict", str(run.folder), str(data / "imagesTr"), "--out", str(tmp_path / "cli"),
                                    "--rung", "unet3d", "--no-tta", "--quiet"])
    assert cli.exit_code == 0, cli.output
    for a, b in zip(plain, sorted((tmp_path / "cli").glob("*.nii.gz"))):
        np.testing.assert_array_equal(read_image(a).array, read_image(b).array)


@pytest.mark.parametrize("prefetch", [0, 2])
def test_batches_drawn_ahead_come_in_order_and_a_failure_there_is_raised_here(prefetch):
    from automed.deep.training import drawn_batches

    counter = iter(range(100))
    assert list(drawn_batches(lambda: next(counter), 5, prefetch)) == [0, 1, 2, 3, 4]
    assert next(counter) == 5, "no batch is drawn beyond those asked for"

    def failing():
        raise ValueError("bad case")

    with pytest.raises(ValueError, match="bad case"):
        list(drawn_batches(failing, 3, prefetch))
