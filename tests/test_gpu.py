"""The GPU path: AMP training and inference, measured peak VRAM, the memory limit, out-of-memory recovery.

Tests marked ``gpu`` need CUDA (``pytest -m gpu``) and are skipped without it; the out-of-memory
recovery and ``benchmarks/gpu_check.py`` are also checked on the CPU, with the failure injected.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import automed
from conftest import FAST_PARAMS, make_msd, make_npz

ROOT = Path(__file__).resolve().parents[1]
SEGMENTATION_RUNGS = ("unet2d", "unetpp", "unet3d", "segresnet", "dynunet")
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


@pytest.mark.slow  # an end-to-end fit: `make test-all` runs it
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


@pytest.mark.slow  # an end-to-end fit: `make test-all` runs it
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
    out, keep = tmp_path / "gpu_check.json", tmp_path / "reports"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--device", "cpu", "--tiny",
                           "--segmentation", str(seg), "--classification", str(cls), "--out", str(out),
                           "--keep", str(keep)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    entry = json.loads(out.read_text())["cpu_tiny"]
    assert entry["device"] == "cpu" and entry["gpu"] is None
    for ladder in ("segmentation", "segmentation_max_vram_8gb", "classification"):
        rungs = entry[ladder]["rungs"]
        assert rungs and all(r["status"] == "done" for r in rungs.values()), rungs
        for rung in rungs.values():
            assert rung["est_train_vram_bytes"] > 0 and rung["peak_vram_bytes"] is None  # no GPU: only the estimate
            assert rung["steps_per_second"] > 0 and rung["epoch_seconds"] > 0 and rung["score"] is not None
        assert (keep / f"{ladder}.report.json").is_file()
    assert set(entry["segmentation"]["rungs"]) == set(SEGMENTATION_RUNGS)
    table = entry["memory_table"]
    assert {r["rung"] for r in table if r["case"] == "ladder"} == set(SEGMENTATION_RUNGS)
    assert any(r["case"] == "large" for r in table)
    for row in table:  # on a CPU: the fp32 probe and a real training, no measured peak
        assert row["fp32"]["formula_bytes"] > row["fp32"]["activation_bytes"] > 0 and "amp" not in row
        assert row["training"]["steps"] == 2 and row["training"]["peak_bytes"] is None


def test_gpu_check_without_its_data_says_which_is_missing(tmp_path):
    missing = tmp_path / "nowhere"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--device", "cpu", "--tiny",
                           "--data", str(missing), "--out", str(tmp_path / "out.json")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and f"{missing / 'hippocampus'}" in done.stderr and "--data" in done.stderr
    assert not (tmp_path / "out.json").exists()


def test_cuda_memory_limit_is_nine_tenths_of_this_process_share(monkeypatch):
    import torch

    from automed.deep.probe import cuda_memory_limit

    assert cuda_memory_limit(torch.device("cpu")) is None
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda d: type("P", (), {"total_memory": 10 * 2**30}))
    monkeypatch.setattr(torch.cuda, "get_per_process_memory_fraction", lambda d: 0.5, raising=False)
    assert cuda_memory_limit(torch.device("cuda")) == int(10 * 2**30 * 0.5 * 0.9)
    monkeypatch.delattr(torch.cuda, "get_per_process_memory_fraction")  # older torch: the whole card
    assert cuda_memory_limit(torch.device("cuda")) == int(10 * 2**30 * 0.9)


@pytest.mark.parametrize("name", SEGMENTATION_RUNGS)
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


@pytest.mark.parametrize("name", ["cnn", "ssl"])
@pytest.mark.gpu
@requires_cuda
def test_deep_classification_rungs_train_with_amp_and_measure_vram_on_cuda(tmp_path, name):
    data = make_npz(tmp_path / "toy.npz", sizes=(40, 12, 16))
    params = {**TINY_CNN, "pretrain_epochs": 2} if name == "ssl" else TINY_CNN
    recipe = automed.Recipe(task="classification", n_folds=3, n_jobs=1, full_ladder=True,
                            rungs=[{"name": "cnn", "params": TINY_CNN}, {"name": name, "params": params}])
    run = automed.fit(recipe, data, tmp_path / "run", progress=False)
    cost = _rung(run, name)["cost"]
    assert cost["device"].startswith("cuda") and cost["peak_vram_bytes"] > 0 and cost["gpu_hours"] > 0


@pytest.mark.gpu
@requires_cuda
def test_max_vram_limit_holds_the_measured_training_peak_on_cuda(toy3d, tmp_path, monkeypatch):
    """The trainings stay under the limit (the rung's own peak also holds the planner's probes of the
    configurations it then shrank)."""
    import torch

    import automed.deep.training

    real, peaks = automed.deep.training.train, []

    def train(*args, **kwargs):
        torch.cuda.reset_peak_memory_stats()
        result = real(*args, **kwargs)
        peaks.append(torch.cuda.max_memory_allocated())
        return result

    monkeypatch.setattr(automed.deep.training, "train", train)
    limit = 256 * 2**20
    params = {**TINY, "widths": [8, 16, 32], "batch_sizes": [2, 4, 8]}
    recipe = automed.Recipe(n_folds=2, n_jobs=1, full_ladder=True, max_vram_bytes=limit,
                            rungs=[{"name": "classical", "params": FAST_PARAMS}, {"name": "unet3d", "params": params}])
    rung = _rung(automed.fit(recipe, toy3d, tmp_path / "run", progress=False), "unet3d")
    if rung["status"] == "skipped":
        assert "GiB limit" in rung["reason"] or "out of GPU memory" in rung["reason"]
    else:
        assert peaks and max(peaks) <= limit and rung["cost"]["est_train_vram_bytes"] <= limit, (peaks, rung["shrunk"])


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



def _unet3d_config(batch_size: int, patch: int = 64, width: int = 16):
    from automed.deep.training import NetConfig

    return NetConfig("automed.nets.unet:UNet", 3, width, {"depth": 4, "res_units": 2}, "dice_ce", 3e-3, batch_size,
                     "light", (patch,) * 3)


@pytest.fixture
def cuda_volumes():
    import torch

    from automed.deep.volumes import SampleSource

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from gpu_check import synthetic_volumes

    volumes = synthetic_volumes((72, 72, 72), 3, 3)
    yield SampleSource({k: volumes[k] for k in ("v0", "v1")}, None), [volumes["v2"]]
    torch.cuda.set_per_process_memory_fraction(1.0)
    torch.cuda.empty_cache()


@pytest.mark.gpu
@requires_cuda
def test_out_of_memory_under_a_real_allocator_limit_halves_the_batch_and_finishes(cuda_volumes, tmp_path):
    import torch

    from automed.deep.probe import probe
    from automed.deep.training import Schedule, train

    source, val = cuda_volumes
    device = torch.device("cuda")
    peaks = {b: probe(_unet3d_config(b), source, 1, 3, device, False, n_steps=1).peak_vram_bytes for b in (1, 8)}
    torch.cuda.empty_cache()
    # a limit halfway between one sample's peak and eight samples': batch 8 cannot train, 4 can
    limit = (peaks[1] + peaks[8]) // 2
    torch.cuda.set_per_process_memory_fraction(limit / torch.cuda.get_device_properties(device).total_memory)
    torch.cuda.reset_peak_memory_stats(device)
    result = train(_unet3d_config(8), Schedule(2, 3, None), source, val, None, 3, 1, tmp_path / "t", 0, device, False)
    assert result.epochs == 2 and 1 <= result.state["batch_size"] < 8, result.state
    assert result.state["events"][0] == "CUDA out of memory at epoch 0: batch halved to 4"
    assert torch.cuda.max_memory_reserved(device) <= limit * 1.01


@pytest.mark.gpu
@requires_cuda
def test_training_memory_estimate_is_within_a_fifth_of_the_measured_training_peak(cuda_volumes, tmp_path):
    import torch

    from automed.deep.probe import probe
    from automed.deep.training import Schedule, train

    source, val = cuda_volumes
    device = torch.device("cuda")
    config = _unet3d_config(4)
    torch.cuda.empty_cache()
    estimate = probe(config, source, 1, 3, device, False).train_memory_bytes
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    train(config, Schedule(1, 5, None), source, val, None, 3, 1, tmp_path / "t", 0, device, False)
    peak = torch.cuda.max_memory_allocated(device)
    assert 0.8 <= estimate / peak <= 1.2, (estimate, peak)


def test_probe_counts_activations_in_the_precision_the_step_ran_in():
    """The estimate's activations are measured, not assumed: under bfloat16 autocast (as under CUDA AMP)
    the saved tensors take about half the fp32 bytes, and the estimate follows."""
    import dataclasses

    import torch

    from automed.deep.probe import probe, training_memory
    from automed.deep.volumes import SampleSource

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from gpu_check import synthetic_volumes

    volumes = synthetic_volumes((20, 20, 20), 3, 2)
    source = SampleSource(volumes, None)
    fp32 = _unet3d_config(2, patch=16, width=8)
    measured = {c.cpu_bfloat16: probe(c, source, 1, 3, torch.device("cpu"), False, n_steps=1)
                for c in (fp32, dataclasses.replace(fp32, cpu_bfloat16=True))}
    for m in measured.values():
        assert m.peak_vram_bytes is None and m.train_memory_bytes == training_memory(m.n_params, m.activation_bytes,
                                                                                       None)
    ratio = measured[True].activation_bytes / measured[False].activation_bytes
    assert 0.4 < ratio < 0.8, ratio


def _probe_out_of_memory_above(monkeypatch, batch_size):
    """Make every probe of a batch above ``batch_size`` raise CUDA out of memory; the batches probed."""
    import torch

    import automed.deep.probe

    real, tried = automed.deep.probe.probe, []

    def probe(config, *args, **kwargs):
        tried.append(config.batch_size)
        if config.batch_size > batch_size:
            raise torch.OutOfMemoryError("CUDA out of memory (injected by the test)")
        return real(config, *args, **kwargs)

    monkeypatch.setattr(automed.deep.probe, "probe", probe)
    return tried


@pytest.mark.slow  # an end-to-end fit: `make test-all` runs it
def test_a_probe_out_of_gpu_memory_shrinks_the_plan_instead_of_failing(toy3d, tmp_path, monkeypatch):
    tried = _probe_out_of_memory_above(monkeypatch, 2)
    recipe = automed.Recipe(n_folds=2, n_jobs=1, max_vram="8GB",
                            rungs=[{"name": "unet3d", "params": {**TINY, "batch_sizes": [2, 4]}}])
    rung = _rung(automed.fit(recipe, toy3d, tmp_path / "run", progress=False), "unet3d")
    assert tried[0] == 4 and rung["status"] == "done", rung.get("reason")
    assert rung["shrunk"] == ["batch 4 -> 2 (out of GPU memory in a probe step)"]
    assert rung["details"]["config"]["batch_size"] == 2


@pytest.mark.slow  # an end-to-end fit: `make test-all` runs it
def test_a_configuration_out_of_gpu_memory_at_its_smallest_is_skipped_with_the_reason(toy3d, tmp_path, monkeypatch):
    _probe_out_of_memory_above(monkeypatch, 0)
    recipe = automed.Recipe(n_folds=2, n_jobs=1, max_vram="8GB", rungs=[{"name": "unet3d", "params": TINY}])
    run = automed.fit(recipe, toy3d, tmp_path / "run", progress=False)
    rung = _rung(run, "unet3d")
    assert rung["status"] == "skipped" and rung["shrunk"] == ["batch 2 -> 1 (out of GPU memory in a probe step)"]
    assert rung["reason"] == "the smallest configuration ran out of GPU memory in a probe training step."
    assert not (run.folder / "rungs" / "unet3d" / "final").exists()


@pytest.mark.slow  # an end-to-end fit: `make test-all` runs it
@pytest.mark.parametrize(("limit", "out_of_memory", "reason"), [
    ("2MB", False, r"^batch 16 needs an estimated 0\.\d GiB to train, more than the 0\.0 GiB limit; give the cnn rung "
                   r"smaller batch_sizes in the recipe\.$"),
    ("8GB", True, r"^batch 16 runs out of GPU memory in a training step; give the cnn rung smaller batch_sizes"),
])
def test_a_classifier_over_the_memory_limit_is_skipped_with_the_fix(tmp_path, monkeypatch, limit, out_of_memory, reason):
    import torch

    import automed.rungs.classification.deep as planning  # where the cnn rung's plan probes its training

    real = planning.probe_training

    def probe_training(model, config, *args):
        if out_of_memory:
            raise torch.OutOfMemoryError("CUDA out of memory (injected by the test)")
        return real(model, config, *args)

    monkeypatch.setattr(planning, "probe_training", probe_training)
    data = make_npz(tmp_path / "toy.npz", sizes=(40, 12, 16))
    recipe = automed.Recipe(task="classification", n_folds=3, n_jobs=1, max_vram=limit,
                            rungs=[{"name": "cnn", "params": TINY_CNN}])
    run = automed.fit(recipe, data, tmp_path / "run", progress=False)
    rung = _rung(run, "cnn")
    assert rung["status"] == "skipped" and rung["reason"] is not None
    assert re.match(reason, rung["reason"]), rung["reason"]
    assert not (run.folder / "rungs" / "cnn" / "model.pt").exists()


@pytest.mark.slow  # an end-to-end fit: `make test-all` runs it
def test_a_classifier_within_the_memory_limit_trains(tmp_path):
    data = make_npz(tmp_path / "toy.npz", sizes=(40, 12, 16))
    recipe = automed.Recipe(task="classification", n_folds=3, n_jobs=1, max_vram="8GB",
                            rungs=[{"name": "cnn", "params": TINY_CNN}])
    assert _rung(automed.fit(recipe, data, tmp_path / "run", progress=False), "cnn")["status"] == "done"


def test_the_prepared_gpu_run_script_parses():
    done = subprocess.run(["bash", "-n", str(ROOT / "benchmarks" / "gpu_run.sh")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
