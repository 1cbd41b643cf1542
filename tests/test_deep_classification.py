"""Deep classification rungs on tiny synthetic images: fit, judge against classical, predict, resume."""

from __future__ import annotations

import json

import numpy as np
import pytest

import automed
from automed.results import Cost, RungResult
from test_classification import FAST, make_npz

RESNET = "automed.nets.resnet:ResNet"

TINY = {"n_trials": 2, "max_epochs": 3, "min_epochs": 1, "widths": [4], "depths": [1], "batch_sizes": [16],
        "n_models": 2}


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
    return make_npz(tmp_path_factory.mktemp("cls") / "toy.npz")


def _recipe(*more_rungs, **changes):
    rungs = [{"name": "classical", "params": FAST}, {"name": "cnn", "params": TINY}, *more_rungs]
    return automed.Recipe(task="classification", n_folds=3, n_jobs=1, full_ladder=True, rungs=rungs, **changes)


@pytest.fixture(scope="module")
def cnn_run(npz, tmp_path_factory):
    return automed.fit(_recipe(), npz, tmp_path_factory.mktemp("cnn") / "run", progress=False)


def test_cnn_scores_the_test_split_with_a_paired_gain_and_predicts(npz, cnn_run, tmp_path):
    import torch

    run = cnn_run
    result = json.loads((run.folder / "rungs/cnn/result.json").read_text())
    assert result["status"] == "done"
    assert result["details"]["splits"] == {"train": 60, "val": 16, "test": 30}
    assert [c["case_id"] for c in result["per_case"]] == json.loads((run.folder / "splits.json").read_text())["test"]
    gain = result["gain_vs_baseline"]
    classical = json.loads((run.folder / "rungs/classical/result.json").read_text())
    assert gain["vs"] == "classical" and gain["n"] == 30
    assert gain["mean"] == pytest.approx(result["test"]["auc"]["mean"] - classical["test"]["auc"]["mean"])
    assert gain["ci_low"] <= gain["mean"] <= gain["ci_high"]
    assert result["cost"]["n_trials"] == 2 and result["cost"]["est_train_vram_bytes"] > 0
    throughput = result["details"]["throughput"]
    assert throughput["steps"] == sum(t["steps"] for t in result["details"]["training"]) > 0
    assert throughput["voxels_per_second"] > 0 and throughput["flops_per_voxel"] > 0
    assert throughput["fraction_of_matmul_peak"] > 0 and throughput["peak"]["matmul_fp32_gflops"] > 0
    assert 0.0 <= result["threshold"] <= 1.0
    assert len(torch.load(run.folder / "rungs/cnn/model.pt", weights_only=True)["members"]) == 2
    overlays = result["gradcam"]
    assert overlays and {g["correct"] for g in overlays} <= {True, False}
    assert all((run.folder / "rungs/cnn" / g["file"]).is_file() for g in overlays)
    assert all((g["label"] == g["predicted"]) == g["correct"] for g in overlays)
    html = (run.folder / "report.html").read_text(encoding="utf-8")
    assert "Grad-CAM" in html and html.count("data:image/png;base64") >= 1 + len(overlays)
    assert f"(rungs/cnn/{overlays[0]['file']})" in (run.folder / "report.md").read_text(encoding="utf-8")
    preds = run.predict(npz, tmp_path / "preds.csv", rung="cnn")
    rows = preds[0].read_text().splitlines()
    assert rows[0].startswith("case,label,prob_") and len(rows) == 1 + 60 + 16 + 30


def test_cnn_predicts_with_the_mean_of_its_seed_models(npz, cnn_run):
    from automed.data.classification import open_classification
    from automed.deep.classification import image_arrays, predict_proba, standardize
    from automed.nets import count_parameters
    from automed.rungs import rung_class

    run = cnn_run
    result = json.loads((run.folder / "rungs/cnn/result.json").read_text())
    assert result["details"]["n_models"] == 2 and [m["seed"] for m in result["details"]["training"]] == [0, 1]
    rung = rung_class("cnn", "classification").load(run.folder / "rungs/cnn")
    first, second = rung.members_
    assert any((a != b).any() for a, b in zip(first.state_dict().values(), second.state_dict().values()))
    assert result["cost"]["n_params"] == 2 * count_parameters(first)
    dataset = open_classification(npz, "auto")
    by_id = {c.case_id: c for c in dataset.cases}
    test = [by_id[c["case_id"]] for c in result["per_case"]]
    images = standardize(image_arrays(dataset, test), rung.mean_, rung.std_)
    each = [predict_proba(m, images, rung.device_, tta=True) for m in rung.members_]
    assert not np.allclose(each[0], each[1])
    assert np.array([c["proba"] for c in result["per_case"]]) == pytest.approx((each[0] + each[1]) / 2, abs=1e-5)
    assert "Deep ensemble: the mean probabilities of 2 models" in (run.folder / "report.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("seconds, n_models, expected", [(100.0, 5, 2), (130.0, 3, 3)])
def test_final_models_are_added_while_the_time_left_holds_another(tmp_path, seconds, n_models, expected):
    """Two finished 40 s members (as a resumed fit finds them) are kept; a third trains only when
    what is left of the final time holds the mean member time."""
    from types import SimpleNamespace

    import torch

    from automed.deep.classification import ClassifierConfig
    from automed.deep.inference import pick_device
    from automed.nets import build_classifier
    from automed.rungs import rung_class
    from automed.rungs.base import FitContext

    config = ClassifierConfig(RESNET, 2, {"width": 4, "depth": 1}, "ce", "uniform", 1e-3, 8, "none")
    for seed in (0, 1):
        folder = tmp_path / "cnn/final" / f"seed{seed}"
        folder.mkdir(parents=True)
        torch.save({"model": build_classifier(config, 1, 2).state_dict()}, folder / "best.pt")
        (folder / "schedule.json").write_text(json.dumps({"epochs": 2}))
        (folder / "member.json").write_text(json.dumps({"seed": seed, "seconds": 40.0, "memory": 123}))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(24, 1, 12, 12)).astype(np.float32)
    y = np.arange(24) % 2
    arrays = {"train": (x[:16], y[:16]), "val": (x[16:], y[16:])}
    context = FitContext(SimpleNamespace(classes=("a", "b")), None, [], tmp_path / "cnn", 0, 1, 1000.0, "")
    cnn = rung_class("cnn", "classification")
    rung = cnn(cnn.Params(n_models=n_models, min_epochs=1))
    rung.in_channels_ = 1
    members, records, memory = rung._train_members(config, seconds, arrays, context, pick_device(), None)
    assert len(members) == expected and [r["seed"] for r in records] == list(range(expected)) and memory == 123
    assert (tmp_path / "cnn/final/seed2/member.json").is_file() == (expected == 3)
    if expected == 3:  # as many epochs as the first member
        assert json.loads((tmp_path / "cnn/final/seed2/schedule.json").read_text()) == {"epochs": 2}


def test_cnn_losses_are_the_searched_imbalance_options(npz):
    import torch

    from automed.deep.classification import build_loss

    counts = np.array([90, 10])
    logits = torch.tensor([[2.0, -1.0], [0.5, 0.2], [-1.0, 1.5], [0.0, 0.0]])
    y = torch.tensor([0, 1, 1, 0])
    plain = float(build_loss("ce", counts)(logits, y))
    weighted = float(build_loss("weighted_ce", counts)(logits, y))
    hard = float(build_loss("ohem", counts)(logits, y))
    focal = float(build_loss("focal", counts)(logits, y))
    per_sample = torch.nn.functional.cross_entropy(logits, y, reduction="none")
    assert hard == pytest.approx(float(per_sample.topk(2).values.mean()))
    assert weighted != pytest.approx(plain) and 0 < focal < plain


def test_balanced_sampling_draws_classes_evenly():
    from automed.deep.classification import _batches

    labels = np.array([0] * 90 + [1] * 10)
    drawn = np.concatenate(_batches(labels, 25, "balanced", np.random.default_rng(0)))
    assert len(drawn) == 100 and 0.35 < labels[drawn].mean() < 0.65
    assert sorted(np.concatenate(_batches(labels, 25, "uniform", np.random.default_rng(0)))) == list(range(100))


@pytest.mark.slow  # an end-to-end fit: `make test-all` runs it
def test_ssl_pretrains_on_unlabelled_images_and_is_set_beside_cnn(npz, tmp_path):
    from conftest import write

    unlabeled = tmp_path / "unlabeled"
    rng = np.random.default_rng(1)
    for i in range(5):
        write(rng.normal(100, 10, (28, 28)).astype(np.float32), unlabeled / f"u{i}.mha")
    rungs = [{"name": "classical", "params": FAST}, {"name": "cnn", "params": TINY},
             {"name": "ssl", "params": {**TINY, "n_trials": 0, "unlabeled": str(unlabeled), "pretrain_epochs": 2}}]
    recipe = automed.Recipe(task="classification", n_folds=3, n_jobs=1, full_ladder=True, rungs=rungs)
    run = automed.fit(recipe, npz, tmp_path / "run", progress=False)
    result = json.loads((run.folder / "rungs/ssl/result.json").read_text())
    cnn = json.loads((run.folder / "rungs/cnn/result.json").read_text())
    pretraining = result["details"]["pretraining"]
    assert pretraining["epochs"] == 2 and pretraining["images"] == 60 + 16 + 5 and pretraining["unlabeled"] == 5
    assert result["details"]["config"] == cnn["details"]["config"]
    assert result["gain_vs_reference"]["vs"] == "cnn" and result["gain_vs_reference"]["n"] == 30
    assert "the same network trained from scratch" in (run.folder / "report.md").read_text(encoding="utf-8")
    assert not (run.folder / "rungs/ssl/pretrain").exists()


def test_pretraining_resumes_from_its_checkpoint(tmp_path):
    from automed.deep.classification import ClassifierConfig
    from automed.deep.genesis import pretrain
    from automed.deep.inference import pick_device
    from automed.nets import build_classifier

    images = np.random.default_rng(0).normal(size=(12, 1, 16, 16)).astype(np.float32)
    config = ClassifierConfig(RESNET, 2, {"width": 4, "depth": 1}, "ce", "uniform", 1e-3, 4, "none")
    first = pretrain(build_classifier(config, 1, 2), images, 60, 2, 4, 1e-3, tmp_path, 0, pick_device())
    more = pretrain(build_classifier(config, 1, 2), images, 60, 4, 4, 1e-3, tmp_path, 0, pick_device())
    assert first["epochs"] == 2 and more["epochs"] == 4 and more["history"][:2] == first["history"]


@pytest.mark.slow  # an end-to-end fit: `make test-all` runs it
def test_label_fractions_refit_every_rung_and_draw_the_learning_curve(npz, tmp_path):
    from automed.data.splits import label_subset

    run = automed.fit(_recipe("ensemble", label_fractions=(0.5, 1.0)), npz, tmp_path / "run", progress=False)
    curve = json.loads((run.folder / "learning_curve.json").read_text())
    assert curve["fractions"] == [0.5, 1.0] and set(curve["rungs"]) == {"classical", "cnn", "ensemble"}
    for points in curve["rungs"].values():
        assert [p["fraction"] for p in points] == [0.5, 1.0] and points[0]["n_dev"] == 38 and points[1]["n_dev"] == 76
        assert all(p["metric"]["ci_low"] <= p["metric"]["mean"] <= p["metric"]["ci_high"] for p in points)
    assert sorted(p.name for p in (run.folder / "rungs/cnn/fractions/0.5").iterdir()) == ["result.json"]
    assert (run.folder / "learning_curve.png").is_file()
    assert "## Learning curve" in (run.folder / "report.md").read_text(encoding="utf-8")
    splits = json.loads((run.folder / "splits.json").read_text())
    labels = {c: "a" if i % 2 else "b" for i, c in enumerate(splits["dev"])}
    half = label_subset(splits, labels, 0.5, 3)
    assert set(half["dev"]) < set(splits["dev"]) and half["test"] == splits["test"] and len(half["dev"]) == 38
    assert set(half["train"]) | set(half["val"]) == set(half["dev"])
    assert sum(labels[c] == "a" for c in half["dev"]) == 19  # stratified


@pytest.mark.slow  # an end-to-end fit: `make test-all` runs it
def test_ensemble_averages_its_members_and_predicts_with_them(npz, tmp_path):
    from automed.metrics import choose_threshold

    run = automed.fit(_recipe("ensemble"), npz, tmp_path / "run", progress=False)
    results = {n: json.loads((run.folder / f"rungs/{n}/result.json").read_text()) for n in ("classical", "cnn",
                                                                                              "ensemble")}
    ensemble, classical, cnn = results["ensemble"], results["classical"], results["cnn"]
    assert ensemble["status"] == "done" and ensemble["details"]["members"] == ["classical", "cnn"]
    members = [{c["case_id"]: c["proba"] for c in r["per_case"]} for r in (classical, cnn)]
    for case in ensemble["per_case"]:
        assert case["proba"] == pytest.approx(np.mean([m[case["case_id"]] for m in members], axis=0))
    # the threshold is learned on the cnn's validation cases, where classical has out-of-fold predictions
    val_ids = [c["case_id"] for c in cnn["validation_per_case"]]
    assert [c["case_id"] for c in ensemble["validation_per_case"]] == val_ids
    assert ensemble["details"]["n_validation_cases"] == 16 and len(classical["validation_per_case"]) == 76
    classes = list(ensemble["per_class"])
    y_val = np.array([classes.index(c["label"]) for c in ensemble["validation_per_case"]])
    proba_val = np.array([c["proba"] for c in ensemble["validation_per_case"]])
    assert ensemble["threshold"] == pytest.approx(choose_threshold("accuracy", y_val, proba_val))
    assert ensemble["cost"]["fit_seconds"] == pytest.approx(classical["cost"]["fit_seconds"] + cnn["cost"]["fit_seconds"])
    assert ensemble["cost"]["n_params"] == cnn["cost"]["n_params"]
    assert ensemble["gain_vs_baseline"]["vs"] == "classical" and ensemble["gain_vs_baseline"]["n"] == 30
    preds = run.predict(npz, tmp_path / "preds.csv", rung="ensemble")[0].read_text().splitlines()
    by_case = {row.split(",")[0]: [float(v) for v in row.split(",")[2:]] for row in preds[1:]}
    for case in ensemble["per_case"]:
        assert by_case[case["case_id"]] == pytest.approx(case["proba"], abs=1e-5)


@pytest.mark.slow  # an end-to-end fit: `make test-all` runs it
def test_ensemble_is_skipped_without_two_members(npz, tmp_path):
    recipe = automed.Recipe(task="classification", n_folds=3, n_jobs=1,
                            rungs=[{"name": "classical", "params": FAST}, "ensemble"])
    run = automed.fit(recipe, npz, tmp_path / "run", progress=False)
    result = json.loads((run.folder / "rungs/ensemble/result.json").read_text())
    assert result["status"] == "skipped" and "two finished rungs" in result["reason"] and "classical" in result["reason"]


@pytest.mark.slow  # an end-to-end fit: `make test-all` runs it
def test_cnn_grades_three_classes_and_volumes(tmp_path):
    """Multi-class grading on 3D inputs: three disc brightnesses in 12^3 volumes."""
    rng = np.random.default_rng(0)
    grids = np.meshgrid(*[np.arange(12)] * 3, indexing="ij")
    disc = sum((g - 6) ** 2 for g in grids) < 9
    arrays = {}
    for split, n in (("train", 60), ("val", 18), ("test", 30)):
        labels = np.arange(n) % 3
        images = rng.normal(60, 10, (n, 12, 12, 12))
        images[:, disc] += (40 + 50 * labels)[:, None]
        arrays[f"{split}_images"] = np.clip(images, 0, 255).astype(np.uint8)
        arrays[f"{split}_labels"] = labels[:, None]
    np.savez(tmp_path / "grades.npz", **arrays)
    recipe = automed.Recipe(task="classification", n_folds=3, n_jobs=1,
                            rungs=[{"name": "cnn", "params": {**TINY, "n_trials": 0, "max_epochs": 4}}])
    run = automed.fit(recipe, tmp_path / "grades.npz", tmp_path / "run", progress=False)
    result = json.loads((run.folder / "rungs/cnn/result.json").read_text())
    assert result["threshold"] is None and len(result["test"]["confusion_matrix"]) == 3
    assert len(result["per_case"][0]["proba"]) == 3 and result["details"]["config"]["spatial_dims"] == 3
    assert result["test"]["auc"]["mean"] > 0.5


def test_classifier_training_resumed_from_last_checkpoint_continues_identically(tmp_path):
    from automed.deep.classification import ClassifierConfig, train_classifier
    from automed.deep.inference import pick_device

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 1, 12, 12)).astype(np.float32)
    y = (x[:, 0, 4:8, 4:8].mean(axis=(1, 2)) > 0).astype(int)
    config = ClassifierConfig(RESNET, 2, {"width": 4, "depth": 1}, "focal", "balanced", 1e-3, 8, "light")
    args = (config, 4, 10, (x[:30], y[:30]), (x[30:], y[30:]), 2)
    whole = train_classifier(*args, tmp_path / "whole", 0, pick_device())

    def interrupt(epoch, value):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_classifier(*args, tmp_path / "split", 0, pick_device(), None, interrupt)
    resumed = train_classifier(*args, tmp_path / "split", 0, pick_device())
    assert resumed.epochs == whole.epochs == 4
    np.testing.assert_allclose(resumed.history, whole.history, atol=1e-6)


def _member(name, val_scores, test_scores, y_val, y_test):
    """A finished rung's result.json with binary probabilities ``p(class b)``."""
    def records(prefix, y, scores):
        return [{"case_id": f"{prefix}{i}", "label": "ab"[k], "proba": [1 - p, p]} for i, (k, p) in
                enumerate(zip(y, scores))]
    return RungResult(name, "done", cost=Cost(1.0, n_params=10, device="cpu"),
                      validation_per_case=records("v", y_val, val_scores), per_case=records("t", y_test, test_scores))


def test_ensemble_averages_the_members_that_score_best_on_validation(tmp_path):
    from types import SimpleNamespace

    from automed.rungs.base import FitContext
    from automed.rungs.classification.ensemble import ClassificationEnsembleRung as EnsembleRung

    rng = np.random.default_rng(0)
    y_val, y_test = rng.integers(0, 2, 40), rng.integers(0, 2, 30)

    def informative(y):
        return np.clip(0.5 + 0.3 * (2 * y - 1) + rng.normal(0, 0.25, len(y)), 0, 1)

    finished = (_member("good", informative(y_val), informative(y_test), y_val, y_test),
                _member("noise", rng.random(40), rng.random(30), y_val, y_test),
                _member("also_good", informative(y_val), informative(y_test), y_val, y_test))
    context = FitContext(SimpleNamespace(classes=("a", "b")), None, [], tmp_path / "ensemble", 0, 1, None, "",
                         metric="auc", finished=finished)
    outcome = EnsembleRung().fit(context)
    assert outcome.details["members"] == ["good", "also_good"]
    assert set(outcome.details["selection"]) == {"good+noise", "good+also_good", "noise+also_good",
                                                 "good+noise+also_good"}
    assert outcome.details["selection"]["good+also_good"] == max(outcome.details["selection"].values())
    assert outcome.per_case[0]["proba"] == pytest.approx(np.mean([finished[0].per_case[0]["proba"],
                                                                  finished[2].per_case[0]["proba"]], axis=0))
    assert outcome.cost["fit_seconds"] == 2.0 and outcome.details["own_seconds"] >= 0  # its cost is its members'
    everyone = EnsembleRung(EnsembleRung.Params(select=False)).fit(context)
    assert everyone.details["members"] == ["good", "noise", "also_good"]


def test_test_time_augmentation_averages_every_mirror():
    import torch

    from automed.deep.classification import predict_proba

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(36, 3))  # not mirror-invariant
    images = np.random.default_rng(0).normal(size=(5, 1, 6, 6)).astype(np.float32)
    plain = predict_proba(model, images, torch.device("cpu"))
    mirrored = [images, images[..., ::-1, :], images[..., ::-1], images[..., ::-1, ::-1]]
    expected = np.mean([predict_proba(model, np.ascontiguousarray(m), torch.device("cpu")) for m in mirrored], axis=0)
    assert not np.allclose(plain, expected)
    assert predict_proba(model, images, torch.device("cpu"), tta=True) == pytest.approx(expected, abs=1e-6)


def test_cnn_exports_to_onnx_checked_on_test_images(cnn_run, tmp_path):
    record = cnn_run.export(tmp_path / "onnx", rung="cnn", format="onnx")
    assert record["files"] == ["network_0.onnx", "network_1.onnx"]  # one per seed model, averaged
    assert record["check"]["max_abs_difference_probability"] < 1e-4 and record["check"]["case"].startswith("test_")
    assert record["input"]["shape"][0] == 1 and len(record["input"]["standardise"]["mean"]) >= 1
    assert record["class_order"] == list(record["classes"].values()) and 0 <= record["threshold"] <= 1
    details = json.loads((cnn_run.folder / "rungs/cnn/result.json").read_text())["details"]["training"][0]
    assert len(details["train_loss"]) == len(details["history"]) > 0
    assert (cnn_run.folder / "rungs/cnn/training_curves.png").is_file()


def test_cnn_replay_trains_its_members_again_without_searching(cnn_run, tmp_path):
    again = automed.replay(cnn_run.folder, tmp_path / "again")
    before, after = (next(r for r in run.report_["rungs"] if r["name"] == "cnn") for run in (cnn_run, again))
    assert "replayed" in after["details"]["search"]["note"] and after["details"]["config"] == before["details"]["config"]
    assert after["details"]["n_models"] == before["details"]["n_models"]
    assert [m["epochs"] for m in after["details"]["training"]] == [m["epochs"] for m in before["details"]["training"]]
    assert after["metric"]["mean"] == pytest.approx(before["metric"]["mean"], abs=1e-3)
