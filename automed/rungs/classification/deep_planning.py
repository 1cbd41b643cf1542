"""The probe a deep classification rung plans with
(:meth:`~automed.rungs.classification.deep.DeepClassifierRung.plan`): timed training steps and the training
memory of a fresh network."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["PROBE_OVERHEAD_S", "probe_training"]

PROBE_OVERHEAD_S = 3.0  # model build and a few steps, per trial and per final training


def probe_training(model: Any, config: Any, x_train: np.ndarray, device: Any) -> tuple[float, int, Any, float]:
    """Seconds per training step (median of 3), estimated training memory of a fresh ``model``,
    the model, and a step's FLOPs per input voxel."""
    import torch

    from automed.deep.loop import train_step
    from automed.deep.probe import time_steps, training_memory
    from automed.nets import count_parameters

    model = model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda")
    x = torch.as_tensor(x_train[: config.batch_size]).to(device)
    y = torch.zeros(len(x), dtype=torch.long, device=device)

    def step() -> int:
        train_step(model, optimizer, scaler, torch.nn.CrossEntropyLoss(), x, y, device.type == "cuda")
        return x.element_size() * x.nelement()

    seconds, activations, peak, flops = time_steps(step, device)
    voxels = len(x) * int(np.prod(x.shape[2:]))
    return seconds, training_memory(count_parameters(model), activations, peak), model, flops / voxels
