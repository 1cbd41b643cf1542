"""Timed training: the epoch loop's time-fitted schedule (a fake clock) and throughput against its precision's peak."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from automed.deep import loop as loop_module  # noqa: E402
from automed.deep.loop import EpochLoop  # noqa: E402


class FakeClock:
    """``time.monotonic`` that moves only when an epoch runs."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_loop(folder, clock, epoch_s, max_epochs, fit_seconds, epoch_cap=None, fail_at=None, cosine=False):
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    scheduler = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max_epochs) if cosine  # classifiers'
                 else torch.optim.lr_scheduler.PolynomialLR(optimizer, total_iters=max_epochs, power=1.0))

    def run_epoch(epoch, rng, state):
        if epoch == fail_at:
            raise KeyboardInterrupt  # a kill mid-training
        optimizer.step()
        clock.now += epoch_s
        return 0.0

    loop = EpochLoop(folder, {"model": model, "optimizer": optimizer, "scheduler": scheduler}, max_epochs, 0, run_epoch,
                     score=lambda: 0.5, patience=max_epochs, fit_seconds=fit_seconds, epoch_cap=epoch_cap)
    return loop, optimizer


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(loop_module.time, "monotonic", fake)
    return fake


@pytest.mark.parametrize("cosine", [False, True])
def test_faster_epochs_than_planned_fill_the_time(tmp_path, clock, cosine):
    loop, optimizer = make_loop(tmp_path, clock, epoch_s=5.0, max_epochs=5, fit_seconds=100.0, epoch_cap=50,
                                cosine=cosine)
    result = loop.run(torch.device("cpu"))
    assert result.epochs == result.max_epochs == 20  # 3 epochs of 5 s, then 85 s hold 17 more
    assert result.stop_reason == "max epochs"
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-9)  # the decay ended at the new last epoch
    assert clock.now - 1000.0 == pytest.approx(100.0)


def test_slower_epochs_than_planned_end_the_schedule_in_time(tmp_path, clock):
    loop, optimizer = make_loop(tmp_path, clock, epoch_s=10.0, max_epochs=30, fit_seconds=100.0)
    result = loop.run(torch.device("cpu"))
    assert result.epochs == result.max_epochs == 10
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-9)


def test_the_cap_bounds_a_replan(tmp_path, clock):
    loop, _ = make_loop(tmp_path, clock, epoch_s=1.0, max_epochs=5, fit_seconds=100.0, epoch_cap=8)
    assert loop.run(torch.device("cpu")).epochs == 8


def test_fixed_epochs_are_not_replanned(tmp_path, clock):
    loop, _ = make_loop(tmp_path, clock, epoch_s=1.0, max_epochs=5, fit_seconds=None, epoch_cap=50)
    assert loop.run(torch.device("cpu")).epochs == 5


def test_a_resumed_training_keeps_its_replan(tmp_path, clock):
    loop, _ = make_loop(tmp_path, clock, epoch_s=5.0, max_epochs=5, fit_seconds=100.0, epoch_cap=50, fail_at=8)
    with pytest.raises(KeyboardInterrupt):
        loop.run(torch.device("cpu"))
    resumed, optimizer = make_loop(tmp_path, clock, epoch_s=5.0, max_epochs=5, fit_seconds=100.0, epoch_cap=50)
    result = resumed.run(torch.device("cpu"))
    assert result.epochs == result.max_epochs == 20
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-9)


def test_throughput_is_judged_against_the_peak_of_its_precision():
    from automed.deep.throughput import training_throughput

    trainings = [{"steps": 10, "step_seconds": 9.0, "data_seconds": 1.0, "voxels": 10_000}]
    peak = {"matmul_fp32_gflops": 100.0, "conv3d_fp32_gflops": 200.0, "matmul_bf16_gflops": 400.0,
            "conv3d_bf16_gflops": None}
    fp32 = training_throughput(trainings, 2e6, peak)
    bf16 = training_throughput(trainings, 2e6, peak, bfloat16=True)
    assert fp32["gflops_per_second"] == pytest.approx(2.0)  # 2e6 FLOP a voxel, 1000 voxels/s
    assert fp32["precision"] == "fp32" and fp32["fraction_of_matmul_peak"] == pytest.approx(0.02)
    assert fp32["fraction_of_conv_peak"] == pytest.approx(0.01)
    assert bf16["precision"] == "bf16" and bf16["fraction_of_matmul_peak"] == pytest.approx(0.005)
    assert bf16["fraction_of_conv_peak"] is None  # not measured on this device


@pytest.mark.slow  # an end-to-end fit: `make test-all` runs it
@pytest.mark.parametrize("bfloat16_share, chosen", [(0.6, True), (0.95, False)])
def test_auto_precision_keeps_bfloat16_only_where_its_step_is_clearly_faster(tmp_path, monkeypatch, bfloat16_share,
                                                                             chosen):
    import dataclasses
    import json

    import automed
    from automed.deep import probe as probe_module
    from conftest import make_msd

    real_probe = probe_module.probe

    def probe_with_a_bfloat16_step_this_much_faster(config, *args, **kwargs):
        measured = real_probe(config, *args, **kwargs)
        share = bfloat16_share if config.cpu_bfloat16 else 1.0
        return dataclasses.replace(measured, seconds_per_step=0.2 * share)

    monkeypatch.setattr(probe_module, "probe", probe_with_a_bfloat16_step_this_much_faster)
    monkeypatch.setattr("automed.deep.throughput.bfloat16_is_fast", lambda device: True)  # whatever this CPU has
    params = {"n_trials": 0, "max_epochs": 1, "min_epochs": 1, "iterations": 2, "widths": [8], "depths": [3],
              "batch_sizes": [2], "tta": False, "cpu_bfloat16": "auto"}
    recipe = automed.Recipe(n_folds=2, n_jobs=1, rungs=[{"name": "unet3d", "params": params}])
    run = automed.fit(recipe, make_msd(tmp_path / "msd", n_cases=6, shape=(16, 20, 16)), tmp_path / "run",
                      progress=False)
    result = json.loads((run.folder / "rungs/unet3d/result.json").read_text())
    assert result["status"] == "done"
    assert "cpu_bfloat16 auto: 0.200 s per step in fp32" in result["estimate"]["note"]
    assert result["details"]["throughput"]["precision"] == ("bf16" if chosen else "fp32")


def test_without_fast_bfloat16_kernels_auto_precision_is_fp32_without_timing_a_bfloat16_step(tmp_path, monkeypatch):
    import json

    import automed
    from automed.deep import probe as probe_module
    from conftest import make_msd

    real_probe = probe_module.probe
    precisions = []

    def recording_probe(config, *args, **kwargs):
        precisions.append(config.cpu_bfloat16)
        return real_probe(config, *args, **kwargs)

    monkeypatch.setattr(probe_module, "probe", recording_probe)
    monkeypatch.setattr("automed.deep.throughput.bfloat16_is_fast", lambda device: False)
    params = {"n_trials": 0, "max_epochs": 1, "min_epochs": 1, "iterations": 2, "widths": [8], "depths": [3],
              "batch_sizes": [2], "tta": False, "cpu_bfloat16": "auto"}
    recipe = automed.Recipe(n_folds=2, n_jobs=1, rungs=[{"name": "unet3d", "params": params}])
    run = automed.fit(recipe, make_msd(tmp_path / "msd", n_cases=6, shape=(16, 20, 16)), tmp_path / "run",
                      progress=False)
    result = json.loads((run.folder / "rungs/unet3d/result.json").read_text())
    assert "bfloat16 convolutions are slower than fp32 on this CPU" in result["estimate"]["note"]
    assert result["details"]["throughput"]["precision"] == "fp32" and True not in precisions


def test_the_bfloat16_check_matches_a_timed_convolution_and_the_peak_follows_it():
    import time

    import torch

    from automed.deep.throughput import bfloat16_is_fast, compute_peak

    x, w = torch.randn(1, 16, 16, 16, 16), torch.randn(16, 16, 3, 3, 3)
    seconds = {}
    for dtype in (torch.float32, torch.bfloat16):
        torch.nn.functional.conv3d(x.to(dtype), w.to(dtype), padding=1)
        started = time.perf_counter()
        for _ in range(3):
            torch.nn.functional.conv3d(x.to(dtype), w.to(dtype), padding=1)
        seconds[dtype] = time.perf_counter() - started
    fast = bfloat16_is_fast(torch.device("cpu"))
    if seconds[torch.bfloat16] > 3 * seconds[torch.float32] or seconds[torch.bfloat16] * 3 < seconds[torch.float32]:
        assert fast == (seconds[torch.bfloat16] < seconds[torch.float32])  # clear cases only: timing noise aside
    peak = compute_peak(torch.device("cpu"))
    assert (peak["conv3d_bf16_gflops"] is not None) == fast


def test_cpu_bfloat16_is_true_false_or_auto():
    from automed.errors import RecipeError
    from automed.rungs import rung_class

    with pytest.raises(RecipeError, match="cpu_bfloat16"):
        rung_class("unet3d", "segmentation").Params(cpu_bfloat16="yes")
