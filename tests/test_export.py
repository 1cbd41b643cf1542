"""Models that leave the run folder: ONNX (checked with onnxruntime), TorchScript, the classical joblib;
and the pictures the report draws from a fitted deep rung."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from automed.cli import main
from automed.errors import RunFolderError
from conftest import fit_deep

TINY = {"n_trials": 1, "max_epochs": 2, "min_epochs": 1, "iterations": 2, "widths": [8], "depths": [3],
        "batch_sizes": [2], "tta": False}


@pytest.fixture(scope="module")
def deep_run(tmp_path_factory):
    return fit_deep(tmp_path_factory.mktemp("deep_run"), {"unet3d": TINY})


def test_onnx_export_runs_in_onnxruntime_like_automed(deep_run, tmp_path):
    import onnx

    record = deep_run.export(tmp_path / "onnx", rung="unet3d", format="onnx")
    saved = json.loads((tmp_path / "onnx" / "automed_model.json").read_text())
    assert saved == json.loads(json.dumps(record, default=str))
    assert record["files"] == ["network_0.onnx"]
    onnx.checker.check_model(str(tmp_path / "onnx" / "network_0.onnx"))
    check = record["check"]
    folds = json.loads((deep_run.folder / "splits.json").read_text())["folds"]
    assert check["case"] in folds[0]["val"] and 0 <= check["max_abs_difference_probability"] < 1e-4
    assert record["input"]["window"] == list(deep_run.report_["rungs"][1]["details"]["config"]["patch"])
    assert record["classes"] == {"0": "background", "1": "left", "2": "right"}
    assert record["normalisation"]["per_channel"] and record["label_mapping"]["raw_value_to_class"]
    assert record["target_spacing"] is not None and record["output"]["activation"] == "softmax over axis 1"


def test_torchscript_export_loads_and_matches(deep_run, tmp_path):
    import torch

    from automed.ladder.predict import _load_rung

    record = deep_run.export(tmp_path / "ts", rung="unet3d", format="torchscript")
    scripted = torch.jit.load(str(tmp_path / "ts" / record["files"][0]))
    net = _load_rung(deep_run.folder, "unet3d", "segmentation").models_[0].to("cpu").eval()
    x = torch.randn(1, 1, *record["input"]["window"])
    with torch.no_grad():
        assert torch.allclose(scripted(x), net(x), atol=1e-5)
    assert "check" not in record


def test_classical_exports_its_joblib_and_refuses_onnx_clearly(deep_run, tmp_path):
    import joblib

    with pytest.raises(RunFolderError, match="cannot be exported to onnx.*Use --format joblib"):
        deep_run.export(tmp_path / "x", rung="classical", format="onnx")
    assert not (tmp_path / "x").exists()
    record = deep_run.export(tmp_path / "cl", rung="classical", format="joblib")
    kept = (record["auto_context"] or {}).get("kept", False)
    assert record["files"] == ["model.joblib"] + (["context_model.joblib"] if kept else [])
    assert all(joblib.load(tmp_path / "cl" / f) is not None for f in record["files"])
    assert ("context_model.joblib" in record["use"]) == kept
    assert record["channels"] == ["MRI"]
    with pytest.raises(RunFolderError, match="is a network"):
        deep_run.export(tmp_path / "y", rung="unet3d", format="joblib")


def test_export_cli_refuses_to_overwrite_and_names_skipped_rungs(deep_run, tmp_path):
    runner = CliRunner()
    out = tmp_path / "cli"
    ok = runner.invoke(main, ["export", str(deep_run.folder), "--rung", "unet3d", "--out", str(out)])
    assert ok.exit_code == 0, ok.output
    assert "max |difference|" in ok.output and (out / "network_0.onnx").is_file()
    again = runner.invoke(main, ["export", str(deep_run.folder), "--rung", "unet3d", "--out", str(out)])
    assert again.exit_code != 0 and "--overwrite" in again.output and "Traceback" not in again.output
    replaced = runner.invoke(main, ["export", str(deep_run.folder), "--rung", "unet3d", "--out", str(out),
                                    "--format", "torchscript", "--overwrite"])
    assert replaced.exit_code == 0 and sorted(p.name for p in out.iterdir()) == ["automed_model.json", "network_0.pt"]
    missing = runner.invoke(main, ["export", str(deep_run.folder), "--rung", "unetpp", "--out", str(tmp_path / "z")])
    assert missing.exit_code != 0 and "no rung 'unetpp'" in missing.output and "Traceback" not in missing.output


def test_report_draws_overlays_and_training_curves_of_a_fitted_rung(deep_run):
    from PIL import Image

    folder = deep_run.folder
    rung = next(r for r in deep_run.report_["rungs"] if r["name"] == "unet3d")
    training = rung["details"]["trainings"][0]
    assert len(training["train_loss"]) == len(training["history"]) == training["epochs"]
    for name in ("unet3d", "classical"):
        overlay = Image.open(folder / "rungs" / name / "overlays.png")
        assert overlay.width <= 1100 and overlay.height > 200
    assert (folder / "rungs" / "unet3d" / "training_curves.png").is_file()
    md = (folder / "report.md").read_text(encoding="utf-8")
    assert "![unet3d: prediction (filled) against ground truth (outlined)" in md
    html = (folder / "report.html").read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") >= 5  # pareto, box plot, 2 overlays, training curves
    ids = set(rung["comparison"]["case_ids"])
    assert ids == set(json.loads((folder / "splits.json").read_text())["folds"][0]["val"])


def test_overlays_pick_best_median_and_worst():
    from automed.report.overlays import chosen_cases

    per_case = [{"case_id": f"c{i}", "scores": {"1": {"dice": d}}} for i, d in enumerate([0.5, 0.9, 0.7, 0.8, 0.6])]
    rung = {"per_case": per_case, "comparison": {"case_ids": ["c0", "c1", "c2", "c3"]}}
    assert [(role, case) for role, case, _ in chosen_cases(rung, [1])] == [
        ("best", "c1"), ("median", "c2"), ("worst", "c0")]
    assert np.isclose(chosen_cases(rung, [1])[0][2], 0.9)
