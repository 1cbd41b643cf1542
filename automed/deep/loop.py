"""The one resumable epoch loop every torch training in automed goes through.

Segmentation, classification and self-supervised pretraining differ only in what one
epoch of steps does and how an epoch is scored; they pass those as callables. The loop
owns the rest: per-epoch seeding (so a resumed training continues as the interrupted one
would have), the time limits, the learning-rate schedule, atomic ``best.pt``/``last.pt``
checkpoints, replaying restored epochs to the callback (Optuna pruning), logging and
early stopping.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from automed.errors import RunFolderError

__all__ = ["EpochLoop", "LoopResult", "autocast", "cpu_layout", "resume", "save_checkpoint", "train_step"]

log = logging.getLogger("automed")

REPLAN_AFTER = 3  # epochs before the first re-plan of a time-fitted schedule (the first epoch runs slow: warm-up)
REPLAN_WINDOW = 10  # a re-plan's epoch time is the median of this many latest epochs


@dataclass
class LoopResult:
    """How a training went.

    Attributes
    ----------
    best_value : float
        Best epoch score (``-inf`` when no epoch ran; the last epoch's value without a scorer).
    best_epoch : int
        Zero-based epoch of ``best_value`` (``-1`` when none).
    epochs : int
        Epochs trained, restored ones included.
    history : list of float
        The score of every epoch.
    max_epochs : int
        The schedule's epochs (the training may have stopped before them).
    train_loss : list of float
        The mean training loss of every epoch (with a scorer; else ``history`` holds it). Checkpoints
        of older versions did not keep it, so after their resume it may be shorter than ``history``.
    seconds : float
        Training seconds, those before a resume included.
    stop_reason : str
        ``"max epochs"``, ``"time allotment used"`` or the early-stopping rule.
    state : dict
        The task's own fields of the saved state (e.g. the batch size after an out-of-memory halving).
    """

    best_value: float
    best_epoch: int
    epochs: int
    history: list[float]
    seconds: float
    stop_reason: str
    state: dict[str, Any] = field(default_factory=dict)
    train_loss: list[float] = field(default_factory=list)
    max_epochs: int = 0


@dataclass
class EpochLoop:
    """A training of ``parts["model"]`` for at most ``max_epochs`` epochs, checkpointed in ``folder``.

    Parameters
    ----------
    folder : Path
        Receives ``last.pt`` (everything needed to continue) and, with a scorer, ``best.pt``.
    parts : dict
        Name -> object with ``state_dict``/``load_state_dict``, saved in ``last.pt``: ``"model"``
        and ``"optimizer"``, and optionally ``"scheduler"`` (stepped after every epoch) and ``"scaler"``.
    max_epochs, seed : int
    run_epoch : callable
        ``run_epoch(epoch, rng, state) -> float``: one epoch of optimiser steps, with ``rng``
        seeded by ``(seed, epoch)``; may update the task's fields of ``state``. Returns the
        epoch's training loss.
    score : callable, optional
        The epoch's validation score (higher is better); the best epoch is kept in ``best.pt``.
        Without it, the training loss is recorded and there is no best epoch or early stop.
    patience : int, optional
        Stop after this many epochs without a better score.
    deadline : float, optional
        ``time.monotonic()`` after which no epoch starts.
    max_seconds : float, optional
        Training seconds (restored ones included) after which no epoch starts.
    on_epoch : callable, optional
        ``on_epoch(epoch, value)`` after every epoch (replayed for restored epochs); may raise to stop.
    extra_state : dict
        The task's own fields of the saved state and their initial values.
    label : str
        What the score is, for the log.
    fit_seconds : float, optional
        Training seconds the schedule is fitted to. A plan made before training (from a probe of a
        few steps) misjudges the steady epoch time, so after ``REPLAN_AFTER`` epochs, and again at
        every quarter of the plan, ``max_epochs`` is re-planned from the median measured epoch time,
        between the next epoch and ``epoch_cap``; the scheduler's horizon and ``patience`` follow.
    epoch_cap : int, optional
        The most epochs a re-plan may give (default: ``max_epochs``).
    """

    folder: Path
    parts: dict[str, Any]
    max_epochs: int
    seed: int
    run_epoch: Callable[[int, np.random.Generator, dict[str, Any]], float]
    score: Callable[[], float] | None = None
    patience: int | None = None
    deadline: float | None = None
    max_seconds: float | None = None
    on_epoch: Callable[[int, float], None] | None = None
    extra_state: dict[str, Any] = field(default_factory=dict)
    label: str = "validation score"
    fit_seconds: float | None = None
    epoch_cap: int | None = None

    def run(self, device: Any) -> LoopResult:
        """Train, continuing from ``folder/last.pt`` when there is one."""
        import torch

        self.folder.mkdir(parents=True, exist_ok=True)
        last = self.folder / "last.pt"
        state = {"epoch": 0, "best_value": -math.inf, "best_epoch": -1, "history": [], "train_loss": [],
                 "elapsed_s": 0.0, "epoch_seconds": [], "replan": None, **self.extra_state}
        state = {**state, **(resume(last, device, self.on_epoch, **self.parts) or {})}  # older checkpoints lack new fields
        self.epoch_cap = self.epoch_cap or self.max_epochs
        if self.fit_seconds is not None and state["replan"] is not None:  # a resume keeps its re-plan
            self.max_epochs, self.patience = state["replan"]
        started = time.monotonic() - state["elapsed_s"]
        model, scheduler = self.parts["model"], self.parts.get("scheduler")
        stop_reason = "max epochs"
        epoch = state["epoch"]
        while epoch < self.max_epochs:
            now = time.monotonic()
            if (self.deadline is not None and now > self.deadline) or (
                    self.max_seconds is not None and now - started > self.max_seconds):
                stop_reason = "time allotment used"
                break
            torch.manual_seed(self.seed + epoch)
            model.train()
            value = self.run_epoch(epoch, np.random.default_rng([self.seed, epoch]), state)
            if scheduler is not None:
                scheduler.step()
            if self.score is not None:
                state["train_loss"].append(value)
                value = self.score()
                if value > state["best_value"]:
                    state["best_value"], state["best_epoch"] = value, epoch
                    save_checkpoint({"model": model.state_dict()}, self.folder / "best.pt")
            state["history"].append(value)
            state["epoch_seconds"].append(time.monotonic() - now)
            state["epoch"], state["elapsed_s"] = epoch + 1, time.monotonic() - started
            self._replan(state, scheduler)
            save_checkpoint({**{name: part.state_dict() for name, part in self.parts.items()}, "state": state}, last)
            if epoch % 10 == 0 or epoch + 1 == self.max_epochs:
                best = f" (best {state['best_value']:.4f} at {state['best_epoch'] + 1})" if self.score else ""
                log.info("%s: epoch %d/%d, %s %.4f%s, %.0fs", self.folder.name, epoch + 1, self.max_epochs,
                         self.label, value, best, state["elapsed_s"])
            if self.on_epoch is not None:
                self.on_epoch(epoch, value)
            if self.patience is not None and epoch - state["best_epoch"] >= self.patience:
                stop_reason = f"early stopping (no gain for {self.patience} epochs)"
                break
            epoch += 1
        history = list(state["history"])
        best = state["best_value"] if self.score is not None else (history[-1] if history else -math.inf)
        return LoopResult(best, state["best_epoch"], state["epoch"], history, time.monotonic() - started,
                          stop_reason, {k: state[k] for k in self.extra_state}, list(state["train_loss"]),
                          self.max_epochs)


    def _replan(self, state: dict[str, Any], scheduler: Any) -> None:
        """Fit ``max_epochs`` to ``fit_seconds`` from the measured epoch times (see the class docstring)."""
        done = state["epoch"]
        if self.fit_seconds is None or done < REPLAN_AFTER or not (
                done == REPLAN_AFTER or done % max(1, self.max_epochs // 4) == 0):
            return
        epoch_s = float(np.median(state["epoch_seconds"][-REPLAN_WINDOW:]))
        planned = int(np.clip(done + (self.fit_seconds - state["elapsed_s"]) // max(epoch_s, 1e-6), done + 1,
                              self.epoch_cap))
        if abs(planned - self.max_epochs) < max(2, 0.02 * self.max_epochs):
            return
        log.info("%s: re-planned from %d to %d epochs (%.1fs an epoch measured, %.0fs of %.0fs used)", self.folder.name,
                 self.max_epochs, planned, epoch_s, state["elapsed_s"], self.fit_seconds)
        if self.patience is not None:
            self.patience = max(1, round(self.patience * planned / self.max_epochs))
        if scheduler is not None:  # the decay ends at the new last epoch, continuing from the present rate
            setattr(scheduler, "total_iters" if hasattr(scheduler, "total_iters") else "T_max", planned)
        self.max_epochs = planned
        state["replan"] = [planned, self.patience]


def cpu_layout(value: Any, spatial_dims: int, device: Any) -> Any:
    """A 3D network or batch in ``channels_last_3d`` memory on a CPU (else as it is).

    Measured on the hippocampus with unet3d's default configuration on 2 cores: one training
    step took 0.158 s instead of 0.204 s (``benchmarks/cpu_training.py``); the arithmetic is the same.
    """
    import torch

    if spatial_dims != 3 or device.type != "cpu":
        return value
    if isinstance(value, torch.Tensor):
        return value.contiguous(memory_format=torch.channels_last_3d)
    return value.to(memory_format=torch.channels_last_3d)


def autocast(device: Any, amp: bool, cpu_bfloat16: bool) -> Any:
    """The autocast context of a step: float16 AMP on CUDA when ``amp``, bfloat16 on a CPU when
    ``cpu_bfloat16`` (weights, gradients and optimiser state stay fp32), else none."""
    import torch

    if device.type == "cuda":
        return torch.autocast("cuda", enabled=amp)
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=cpu_bfloat16)


def train_step(model: Any, optimizer: Any, scaler: Any, loss_fn: Any, images: Any, target: Any, amp: bool,
               clip_norm: float | None = None, cpu_bfloat16: bool = False) -> float:
    """One optimiser step (CUDA mixed precision when ``amp``, bfloat16 autocast on a CPU when
    ``cpu_bfloat16``; gradient norm clipped at ``clip_norm``); the loss."""
    import torch

    optimizer.zero_grad(set_to_none=True)
    with autocast(images.device, amp, cpu_bfloat16):
        loss = loss_fn(model(images), target)
    scaler.scale(loss).backward()
    if clip_norm is not None:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
    scaler.step(optimizer)
    scaler.update()
    return float(loss.detach())


def resume(path: Path, device: Any, on_epoch: Callable[[int, float], None] | None, **parts: Any) -> dict | None:
    """Restore ``parts`` (name -> object with ``load_state_dict``) from the checkpoint ``path``.

    Returns the saved training state (None when there is no checkpoint) after replaying
    its per-epoch history to ``on_epoch``, so a pruner sees the same reports again.

    Raises
    ------
    RunFolderError
        The checkpoint lacks one of ``parts`` (written by another version of automed).
    """
    import torch

    if not path.is_file():
        return None
    checkpoint = torch.load(path, map_location=device, weights_only=True)
    missing = sorted(set(parts) - set(checkpoint))
    if missing:
        raise RunFolderError(f"{path}: this checkpoint has no {', '.join(missing)} (written by another version of "
                             "automed); delete it to restart this training.")
    for name, part in parts.items():
        part.load_state_dict(checkpoint[name])
    state = checkpoint["state"]
    log.info("resumed training in %s at epoch %d", path.parent, state["epoch"])
    if on_epoch is not None:
        for epoch, value in enumerate(state["history"]):
            on_epoch(epoch, value)
    return state


def save_checkpoint(obj: dict[str, Any], path: Path) -> None:
    """``torch.save`` to a temporary file, then rename: a kill never leaves a torn checkpoint."""
    import torch

    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)
