"""The GPU path: AMP training and inference, measured peak VRAM, the memory limit, out-of-memory recovery.

Tests marked ``gpu`` need CUDA (``pytest -m gpu``) and are skipped without it; the out-of-memory
recovery and ``benchmarks/gpu_check.py`` are also checked on the CPU, with the failure injected.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import automed
from conftest import FAST_PARAMS, make_msd, make_npz

ROOT = Path(__file__).resolve().parents[1]
TINY = {"n_trials": 0, "max_epochs": 2, "min_epochs": 1, "iterations": 3, "widths": [8], "depths": [3],
        "batch_sizes": [2], "tta": False}
TINY_CNN = {"n_trials": 0, "max_epochs": 2, "min_epochs": 1, "widths": [4], "depths": [1], "batch_sizes": [16],
            "n_models": 1}


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


requires_cuda = pytest.mark.skipif(not _cuda(), reason="needs a CUDA device")


@pytest.fixture(scope="module")
def toy3d(tmp_path_factory):
    return make_msd(tmp_path_factory.mktemp("gpu3d"), n_cases=8, shape=(16, 20, 16))


def _rung(run, name):
    return next(r for r in run.report_["rungs"] if r["name"] == name)


def _out_of_memory_once(monkeypatch, module):
    """Make ``module.train_step`` raise CUDA out of memory on its first call with a batch above one."""
    import torch

    real, calls = module.train_step, []

    def failing(model, optimizer, scaler, loss_fn, images, *args, **kwargs):
        if not calls and images.shape[0] > 1:
            calls.append(images.shape[0])
            raise torch.OutOfMemoryError("CUDA out of memory (injected by the test)")
        return real(model, optimizer, scaler, loss_fn, images, *args, **kwargs)

    monkeypatch.setattr(module, "train_step", failing)
    return calls


def test_segmentation_out_of_memory_halves_the_batch_records_it_and_finishes(toy3d, tmp_path, monkeypatch):
    import automed.deep.training

    calls = _out_of_memory_once(monkeypatch, automed.deep.training)
    recipe = automed.Recipe(n_folds=2, n_jobs=1, full_ladder=True,
                            rungs=[{"name": "classical", "params": FAST_PARAMS}, {"name": "unet3d", "params": TINY}])
    run = automed.fit(recipe, toy3d, tmp_path / "run", progress=False)
    rung = _rung(run, "unet3d")
    assert calls == [2] and rung["status"] == "done"
    training = rung["details"]["trainings"][0]
    assert training["batch_size"] == 1 and training["events"] == ["CUDA out of memory at epoch 0: batch halved to 1"]
    assert "CUDA out of memory at epoch 0: batch halved to 1" in rung["shrunk"]
    assert "batch halved to 1" in (run.folder / "report.md").read_text(encoding="utf-8")


def test_classification_out_of_memory_retries_the_batch_in_halves(tmp_path, monkeypatch):
    import automed.deep.classification

    calls = _out_of_memory_once(monkeypatch, automed.deep.classification)
    data = make_npz(tmp_path / "toy.npz", sizes=(40, 12, 16))
    recipe = automed.Recipe(task="classification", n_folds=3, n_jobs=1, full_ladder=True,
                            rungs=[{"name": "cnn", "params": TINY_CNN}])
    run = automed.fit(recipe, data, tmp_path / "run", progress=False)
    rung = _rung(run, "cnn")
    member = rung["details"]["training"][0]
    assert calls == [16] and rung["status"] == "done" and member["batch_size"] == 8
    assert member["events"] == ["CUDA out of memory at epoch 0: batch halved to 8"] and member["events"][0] in rung["shrunk"]


def test_gpu_check_runs_on_the_cpu(tmp_path):
    seg = make_msd(tmp_path / "seg", n_cases=8, shape=(16, 20, 16))
    cls = make_npz(tmp_path / "toy.npz", sizes=(40, 12, 16))
    out = tmp_path / "gpu_check.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--device", "cpu", "--tiny",
                           "--segmentation", str(seg), "--classification", str(cls), "--out", str(out)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    entry = json.loads(out.read_text())["cpu_tiny"]
    assert entry["device"] == "cpu" and entry["gpu"] is None
    for ladder in ("segmentation", "segmentation_max_vram_8gb", "classification"):
        rungs = entry[ladder]["rungs"]
        assert rungs and all(r["status"] == "done" for r in rungs.values()), rungs
        for rung in rungs.values():
            assert rung["est_train_vram_bytes"] > 0 and rung["peak_vram_bytes"] is None  # no GPU: only the estimate
            assert rung["steps_per_second"] > 0 and rung["epoch_seconds"] > 0 and rung["score"] is not None
    assert set(entry["segmentation"]["rungs"]) == {"unet2d", "unet3d", "unetpp"}


@pytest.mark.parametrize("name", ["unet2d", "unet3d", "unetpp"])
@pytest.mark.gpu
@requires_cuda
def test_deep_segmentation_rungs_train_with_amp_and_measure_vram_on_cuda(toy3d, tmp_path, name):
    recipe = automed.Recipe(n_folds=2, n_jobs=1, full_ladder=True,
                            rungs=[{"name": "classical", "params": FAST_PARAMS}, {"name": name, "params": TINY}])
    run = automed.fit(recipe, toy3d, tmp_path / "run", progress=False)
    cost = _rung(run, name)["cost"]
    assert cost["device"].startswith("cuda") and cost["peak_vram_bytes"] > 0 and cost["est_train_vram_bytes"] > 0
    assert cost["gpu_hours"] > 0 and cost["core_hours"] is None
    written = run.predict(toy3d / "imagesTr", tmp_path / "pred", rung=name)
    assert len(written) == 8


@pytest.mark.gpu
@requires_cuda
def test_cnn_trains_with_amp_and_measures_vram_on_cuda(tmp_path):
    data = make_npz(tmp_path / "toy.npz", sizes=(40, 12, 16))
    recipe = automed.Recipe(task="classification", n_folds=3, n_jobs=1, full_ladder=True,
                            rungs=[{"name": "classical", "params": {}}, {"name": "cnn", "params": TINY_CNN}])
    cost = _rung(automed.fit(recipe, data, tmp_path / "run", progress=False), "cnn")["cost"]
    assert cost["device"].startswith("cuda") and cost["peak_vram_bytes"] > 0 and cost["gpu_hours"] > 0


@pytest.mark.gpu
@requires_cuda
def test_max_vram_limit_holds_the_measured_peak_on_cuda(toy3d, tmp_path):
    limit = 256 * 2**20
    params = {**TINY, "widths": [8, 16, 32], "batch_sizes": [2, 4, 8]}
    recipe = automed.Recipe(n_folds=2, n_jobs=1, full_ladder=True, max_vram_bytes=limit,
                            rungs=[{"name": "classical", "params": FAST_PARAMS}, {"name": "unet3d", "params": params}])
    rung = _rung(automed.fit(recipe, toy3d, tmp_path / "run", progress=False), "unet3d")
    assert rung["status"] == "skipped" and "VRAM" in rung["reason"] or rung["cost"]["peak_vram_bytes"] <= limit


@pytest.mark.gpu
@requires_cuda
def test_cpu_and_cuda_agree_on_the_same_seed(toy3d, tmp_path, monkeypatch):
    import torch

    import automed.deep.inference

    recipe = automed.Recipe(n_folds=2, n_jobs=1, full_ladder=True,
                            rungs=[{"name": "classical", "params": FAST_PARAMS},
                                   {"name": "unet2d", "params": {**TINY, "max_epochs": 6, "iterations": 10}}])
    on_cuda = _rung(automed.fit(recipe, toy3d, tmp_path / "cuda", progress=False), "unet2d")
    monkeypatch.setattr(automed.deep.inference, "pick_device", lambda: torch.device("cpu"))
    on_cpu = _rung(automed.fit(recipe, toy3d, tmp_path / "cpu", progress=False), "unet2d")
    assert on_cpu["cost"]["device"] == "cpu"
    assert abs(on_cuda["metric"]["mean"] - on_cpu["metric"]["mean"]) < 0.05
    assert np.isfinite(on_cuda["metric"]["mean"])

