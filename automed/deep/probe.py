"""A few timed training steps: seconds per step and the memory a GPU would need to train."""

from __future__ import annotations

import time
from dataclasses import dataclass
from collections.abc import Callable
from typing import Any

import numpy as np

from automed.deep.loop import cpu_layout, train_step
from automed.deep.training import CLIP_NORM, NetConfig, make_batch, training_loss
from automed.deep.volumes import SampleSource

__all__ = ["Probe", "cuda_memory_limit", "memory_or_none", "probe", "time_steps", "training_memory"]


@dataclass(frozen=True)
class Probe:
    """What a probe measured.

    Attributes
    ----------
    seconds_per_step : float
        Median wall time of one optimiser step (batch sampling and augmentation included).
    train_memory_bytes : int
        Estimated training memory: weights, gradients and the two AdamW moments
        (4 x parameter bytes), the activations autograd saved for backward in one
        step (measured with saved-tensor hooks, in the precision the step ran in) and
        the input batch. On a CPU in fp32; under bfloat16 autocast the saved bytes were
        0.57 to 0.58 of fp32's (unet3d, 16^3 and 48^3 patches, 2 cores), which is what
        float16 AMP is expected to save on CUDA too (not yet measured on a GPU). On
        CUDA the bytes are those of the AMP step, and the measured peak replaces the
        estimate when larger.
    peak_vram_bytes : int or None
        ``torch.cuda.max_memory_allocated`` during the probe on CUDA.
    n_params : int
    flops_per_voxel : float or None
        Floating-point operations of a training step (forward and backward) per voxel of
        its input batch, as torch's FLOP counter counts them.
    activation_bytes : int
        Bytes autograd saved for backward in one step, plus its input batch (as measured,
        in the precision the step ran in).
    """

    seconds_per_step: float
    train_memory_bytes: int
    peak_vram_bytes: int | None
    n_params: int
    flops_per_voxel: float | None = None
    activation_bytes: int = 0


def time_steps(step: Callable[[], int], device: Any, n_steps: int = 3
               ) -> tuple[float, int, int | None, int]:
    """Run ``step`` once counting the bytes autograd saves for backward and its FLOPs, then
    ``n_steps`` timed.

    ``step()`` makes one optimiser step and returns the bytes of its input batch. Returns
    the median seconds per step, the saved-activation plus input bytes of one step, on CUDA
    the peak allocated memory (None elsewhere), and the FLOPs of one step.
    """
    import torch

    from automed.deep.throughput import step_flops

    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    saved: dict[int, int] = {}

    def pack(tensor: Any) -> Any:
        storage = tensor.untyped_storage()
        saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    input_bytes = []
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        flops = step_flops(lambda: input_bytes.append(step()))
    times = []
    for _ in range(n_steps):
        started = time.perf_counter()
        step()
        if cuda:
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - started)
    peak = int(torch.cuda.max_memory_allocated(device)) if cuda else None
    return float(np.median(times)), sum(saved.values()) + input_bytes[0], peak, flops


def training_memory(n_params: int, activation_bytes: int, peak: int | None) -> int:
    """Weights, gradients and the two AdamW moments (4 x fp32 parameter bytes) plus one step's
    activations and input; the measured CUDA peak when larger."""
    return max(4 * 4 * n_params + activation_bytes, peak or 0)


def cuda_memory_limit(device: Any) -> int | None:
    """90% of the memory this process may take on the GPU (its share under
    ``torch.cuda.set_per_process_memory_fraction``, all of it by default); no limit on CPU."""
    import torch

    if device.type != "cuda":
        return None
    # torch.cuda.get_per_process_memory_fraction is recent: without it, the default share (all of it)
    share = getattr(torch.cuda, "get_per_process_memory_fraction", lambda _: 1.0)(device)
    return int(torch.cuda.get_device_properties(device).total_memory * share * 0.9)


def memory_or_none(measure: Callable[[], int]) -> int | None:
    """``measure()`` (a training-memory estimate from a probe), or None when its probe ran out of GPU
    memory: a configuration that needs more than the card gives, whatever the limit."""
    import torch

    try:
        return measure()
    except torch.OutOfMemoryError:
        pass
    torch.cuda.empty_cache()  # out of the except block, which kept the failed step's tensors alive
    return None


def probe(config: NetConfig, source: SampleSource, in_channels: int, n_classes: int, device: Any,
          include_background: bool, n_steps: int = 3, seed: int = 0, amp: bool | None = None) -> Probe:
    """Time ``n_steps`` training steps of ``config`` on sampled patches after one accounted warm-up step.

    ``amp`` (default: on CUDA) trains the steps under float16 mixed precision, as training does;
    ``amp=False`` on CUDA measures the fp32 steps (``benchmarks/gpu_check.py`` compares the two).
    """
    import torch

    from automed.deep.augment import training_transform
    from automed.nets import build_network, count_parameters

    torch.manual_seed(seed)
    model = cpu_layout(build_network(config, in_channels, n_classes).to(device), config.spatial_dims, device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)
    loss_fn = training_loss(config, include_background)
    transform = training_transform(config.patch, config.augmentation, seed)
    rng = np.random.default_rng(seed)
    amp = device.type == "cuda" if amp is None else amp
    scaler = torch.amp.GradScaler("cuda", enabled=amp)

    def step() -> int:
        images, labels = make_batch(source, transform, rng, config.batch_size, config.patch)
        train_step(model, optimizer, scaler, loss_fn, cpu_layout(images.to(device), config.spatial_dims, device),
                   labels.to(device), amp, CLIP_NORM, config.cpu_bfloat16)
        return images.element_size() * images.nelement()

    seconds, activations, peak, flops = time_steps(step, device, n_steps)
    n_params = count_parameters(model)
    voxels = config.batch_size * int(np.prod(config.patch))
    return Probe(seconds, training_memory(n_params, activations, peak), peak, n_params, flops / voxels, activations)
