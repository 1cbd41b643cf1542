"""Planning of the deep classification rungs: time a few training steps of the default
configuration, then size trials and epochs to the time allotted, or skip with the reason.

The plan is saved in the rung's folder, so a resumed fit follows it unchanged.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from automed.rungs.base import FitContext, RungPlan
from automed.rungs.time_plan import split_time

__all__ = ["PROBE_OVERHEAD_S", "ClassifierPlanning", "probe_training"]

PROBE_OVERHEAD_S = 3.0  # model build and a few steps, per trial and per final training


class ClassifierPlanning:
    """The planning half of :class:`~automed.rungs.deep_classification.DeepClassifierRung` (a mixin:
    it uses the rung's ``params``, ``_arrays``, ``_default_space``, ``_config`` and ``_network``)."""

    def plan(self, context: FitContext) -> RungPlan:
        """Time a few training steps of the default configuration and size trials and epochs."""
        from automed.deep.classification import ClassifierConfig, predict_proba
        from automed.deep.inference import pick_device

        device = pick_device()
        arrays = self._arrays(context)
        x_train = arrays["train"][0]
        space = self._default_space()
        config: ClassifierConfig = self._config(space, x_train.ndim - 2)
        too_large = self._memory_limit_reason(context, space, x_train, device)
        if too_large is not None:
            return RungPlan(None, None, skip_reason=too_large)
        seconds_per_step, memory, model, _ = probe_training(self._network(config, len(context.dataset.classes)),
                                                          config, x_train, device)
        started = time.perf_counter()
        predict_proba(model, arrays["val"][0], device)
        val_s = time.perf_counter() - started
        epoch_s = math.ceil(len(x_train) / config.batch_size) * seconds_per_step + val_s
        p, budget, shrunk = self.params, context.budget_s, []
        # after training, each final model scores the validation and test cases, mirrored with TTA
        mirrors = 2 ** (x_train.ndim - 2) if p.tta else 1
        n_val = len(arrays["val"][0])
        evaluation_s = val_s * (n_val + len(arrays["test"][0])) / max(1, n_val) * mirrors
        note = (f"probe on {device}: {seconds_per_step:.3f} s per step of {config.batch_size} images, "
                f"{epoch_s:.1f} s per epoch, {evaluation_s:.0f} s per model to score the validation and test cases")
        settings: dict[str, Any] = {"epoch_seconds": epoch_s, "device": str(device),
                                    "evaluation_seconds": evaluation_s}
        if budget is None:
            n_trials = p.n_trials if p.n_trials >= 2 else 0
            settings.update(trial_epochs=max(p.max_epochs // 3, p.min_epochs), final_epochs=p.max_epochs)
            trial_s = settings["trial_epochs"] * epoch_s + PROBE_OVERHEAD_S
            final_s = p.max_epochs * epoch_s + PROBE_OVERHEAD_S
        else:
            usable = budget - 10.0 - PROBE_OVERHEAD_S - evaluation_s
            if usable < p.min_epochs * epoch_s:
                need = p.min_epochs * epoch_s + 10.0
                return RungPlan(need, memory, note, shrunk, skip_reason=f"estimated {need / 60:.1f} min for the "
                                f"shortest training ({p.min_epochs} epochs) > the {budget / 60:.1f} min allotted.")
            n_trials, trial_s, final_s = split_time(usable, epoch_s, p, PROBE_OVERHEAD_S, shrunk)
        settings.update(n_trials=n_trials, trial_seconds=trial_s, final_seconds=final_s)
        plan = RungPlan(10.0 + n_trials * trial_s + final_s + evaluation_s, memory, note, shrunk, None, settings)
        return plan

    def _memory_limit_reason(self, context: FitContext, space: dict[str, Any], x_train: np.ndarray,
                             device: Any) -> str | None:
        """Why the largest searched batch cannot train within the memory limit (``--max-vram``, else
        90% of this process's share of the GPU), or None when it can or there is no limit."""
        from automed.deep.probe import memory_or_none
        from automed.rungs.deep_planning import cuda_memory_limit

        limit = context.max_vram_bytes or cuda_memory_limit(device)
        if limit is None:
            return None
        largest = max(self.params.batch_sizes)
        config = self._config({**space, "batch_size": largest}, x_train.ndim - 2)
        need = memory_or_none(lambda: probe_training(self._network(config, len(context.dataset.classes)), config,
                                                     x_train, device)[1])
        if need is not None and need <= limit:
            return None
        why = ("runs out of GPU memory in a training step" if need is None else
               f"needs an estimated {need / 2**30:.1f} GiB to train, more than the {limit / 2**30:.1f} GiB limit")
        return f"batch {largest} {why}; give the {self.name} rung smaller batch_sizes in the recipe."


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
