"""How fast this machine computes, and how much of it a network's training achieves.

A run measures the device's dense peak once, at its start (:func:`compute_peak`); each deep
rung counts the floating-point operations of one training step (:func:`step_flops`, with
torch's own FLOP counter) and times its steps, so its report says steps and voxels per second
and the fraction of the measured peak it reached (:func:`training_throughput`). A low fraction
with a high ``data_share`` means the data path, not the network, is what to make faster.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np

__all__ = ["THROUGHPUT_FIELDS", "bfloat16_is_fast", "compute_peak", "count_step", "step_flops", "training_throughput"]

#: What a training counts in its saved state for :func:`training_throughput`.
THROUGHPUT_FIELDS = ("steps", "voxels", "data_seconds", "step_seconds")

_MATMUL_N = 2048
_CONV = (2, 32, 32)  # batch, channels, side of the 3D input of a 3x3x3 convolution
_SMALL_CONV = (1, 16, 16)  # the same, small enough to time in bfloat16 on any CPU (a few tenths of a second at worst)


def _best_rate(run: Callable[[], Any], flops: float, device: Any, repeats: int = 3) -> float:
    """Best of ``repeats`` timed calls after a warm-up, in GFLOP/s."""
    import torch

    run()
    best = np.inf
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - started)
    return flops / best / 1e9


@lru_cache(maxsize=None)
def _bfloat16_is_fast(device: str) -> bool:
    import torch

    if torch.device(device).type != "cpu":
        return True  # GPUs that lack bfloat16 raise instead, which their callers catch
    batch, channels, side = _SMALL_CONV
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, channels, side, side, side, generator=g)
    w = torch.randn(channels, channels, 3, 3, 3, generator=g)
    flops = 2.0 * batch * channels * channels * 27 * side ** 3
    with torch.no_grad():
        fp32 = _best_rate(lambda: torch.nn.functional.conv3d(x, w, padding=1), flops, torch.device(device), 1)
        try:
            x16, w16 = x.bfloat16(), w.bfloat16()
            bf16 = _best_rate(lambda: torch.nn.functional.conv3d(x16, w16, padding=1), flops, torch.device(device), 1)
        except RuntimeError:  # no bfloat16 kernels at all
            return False
    return bf16 >= fp32


def bfloat16_is_fast(device: Any) -> bool:
    """Whether a small bfloat16 3D convolution on ``device`` runs at least as fast as in fp32 (measured
    once per device; always True on a GPU).

    CPUs without bfloat16 instructions (AVX-512 BF16, AMX; e.g. an AVX2-only EPYC) run bfloat16
    convolutions on a reference path ten to twenty times slower than fp32: there, timing a full-sized
    bfloat16 convolution or training step would take minutes to learn that fp32 is faster.
    """
    return _bfloat16_is_fast(str(device))


def compute_peak(device: Any) -> dict[str, Any]:
    """Measured dense throughput of ``device`` with torch's current thread count (about 2 s on CPU).

    Returns
    -------
    dict
        ``matmul_fp32_gflops`` (a 2048 x 2048 matrix product), ``conv3d_fp32_gflops`` (a 3x3x3
        convolution of 32 channels on 2 x 32^3 voxels), ``matmul_bf16_gflops`` and
        ``conv3d_bf16_gflops`` (the same in bfloat16; None where it is not supported), ``threads``
        and ``device``.
    """
    import torch

    g = torch.Generator().manual_seed(0)
    a = torch.randn(_MATMUL_N, _MATMUL_N, generator=g).to(device)
    b = torch.randn(_MATMUL_N, _MATMUL_N, generator=g).to(device)
    matmul_flops = 2.0 * _MATMUL_N ** 3
    batch, channels, side = _CONV
    x = torch.randn(batch, channels, side, side, side, generator=g).to(device)
    w = torch.randn(channels, channels, 3, 3, 3, generator=g).to(device)
    conv_flops = 2.0 * batch * channels * channels * 27 * side ** 3
    with torch.no_grad():
        peak = {"matmul_fp32_gflops": _best_rate(lambda: a @ b, matmul_flops, device),
                "conv3d_fp32_gflops": _best_rate(lambda: torch.nn.functional.conv3d(x, w, padding=1), conv_flops,
                                                 device)}
        if not bfloat16_is_fast(device):
            return {**peak, "matmul_bf16_gflops": None, "conv3d_bf16_gflops": None,
                    "threads": torch.get_num_threads(), "device": str(device)}
        try:
            a16, b16, x16, w16 = a.bfloat16(), b.bfloat16(), x.bfloat16(), w.bfloat16()
            peak["matmul_bf16_gflops"] = _best_rate(lambda: a16 @ b16, matmul_flops, device)
            peak["conv3d_bf16_gflops"] = _best_rate(lambda: torch.nn.functional.conv3d(x16, w16, padding=1),
                                                    conv_flops, device)
        except RuntimeError:  # no bfloat16 kernels on this device
            peak["matmul_bf16_gflops"] = peak["conv3d_bf16_gflops"] = None
    return {**peak, "threads": torch.get_num_threads(), "device": str(device)}


def count_step(state: dict[str, Any], voxels: int, data_seconds: float, step_seconds: float) -> None:
    """Add one training step (its input voxels, and the seconds drawing its batch and training
    on it) to a training's saved ``state``."""
    state["steps"] += 1
    state["voxels"] += voxels
    state["data_seconds"] += data_seconds
    state["step_seconds"] += step_seconds


def step_flops(step: Callable[[], Any]) -> int:
    """Floating-point operations of one call of ``step`` (forward and backward), as torch's
    FLOP counter counts them: matrix products and convolutions, 2 per multiply-add."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return int(counter.get_total_flops())


def training_throughput(trainings: list[dict[str, Any]], flops_per_voxel: float | None,
                        peak: dict[str, Any] | None, bfloat16: bool = False) -> dict[str, Any] | None:
    """Steps and voxels per second over ``trainings`` (their ``steps``, ``step_seconds``,
    ``data_seconds`` and ``voxels``), achieved GFLOP/s (from ``flops_per_voxel`` of a training
    step) and its fraction of ``peak``'s matrix-product rate (and of its convolution rate) in the
    training's ``precision``: bfloat16 when it trained under CPU bfloat16 autocast, else fp32.
    None when no step was timed."""
    steps = sum(t.get("steps", 0) for t in trainings)
    compute_s = sum(t.get("step_seconds", 0.0) for t in trainings)
    data_s = sum(t.get("data_seconds", 0.0) for t in trainings)
    if not steps or compute_s + data_s <= 0:
        return None
    total_s = compute_s + data_s
    voxels = sum(t.get("voxels", 0) for t in trainings)
    out: dict[str, Any] = {
        "steps": steps, "steps_per_second": steps / total_s, "voxels_per_second": voxels / total_s,
        "data_share": data_s / total_s, "flops_per_voxel": flops_per_voxel,
        "gflops_per_second": None, "precision": "bf16" if bfloat16 else "fp32",
        "fraction_of_matmul_peak": None, "fraction_of_conv_peak": None, "peak": peak,
    }
    if flops_per_voxel:
        achieved = flops_per_voxel * voxels / total_s / 1e9
        out["gflops_per_second"] = achieved
        for kind in ("matmul", "conv"):
            rate = (peak or {}).get(f"{'conv3d' if kind == 'conv' else kind}_{out['precision']}_gflops")
            out[f"fraction_of_{kind}_peak"] = achieved / rate if rate else None
    return out
