"""One training loop for every deep segmentation rung, resumable from its last checkpoint.

Per epoch: ``iterations`` optimiser steps on augmented patches, a poly learning-rate
step, validation Dice on whole validation images, ``best.pt``/``last.pt`` checkpoints
(written atomically; ``last.pt`` holds everything needed to continue), an optional
callback (Optuna pruning) and early stopping.
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

from automed.deep.volumes import SampleSource, Volume

__all__ = ["NetConfig", "Schedule", "TrainResult", "build_loss", "config_from_dict", "make_batch",
           "resume", "save_checkpoint", "train", "train_step", "training_loss",
           "validate"]

log = logging.getLogger("automed")
FOREGROUND_SHARE = 1 / 3  # share of 2D training slices drawn from slices with foreground (as nnU-Net oversamples)


@dataclass(frozen=True)
class NetConfig:
    """Network, loss, optimiser and sampling of one training.

    ``architecture`` is an :mod:`automed.nets` path (``"automed.nets.unet:UNet"``), ``width`` its
    first-level channels and ``hp`` its own hyperparameters (e.g. U-Net ``depth``, ``res_units``).
    """

    architecture: str
    spatial_dims: int
    width: int
    hp: dict[str, Any]
    loss: str
    lr: float
    batch_size: int
    augmentation: str
    patch: tuple[int, ...]
    weight_decay: float = 3e-5


@dataclass(frozen=True)
class Schedule:
    """How long a training runs: epochs of ``iterations`` steps, stopped early after ``patience`` epochs."""

    max_epochs: int
    iterations: int
    patience: int


@dataclass
class TrainResult:
    best_value: float
    best_epoch: int
    epochs: int
    history: list[float]
    seconds: float
    stop_reason: str
    batch_size: int
    events: list[str] = field(default_factory=list)


def build_loss(name: str, include_background: bool) -> Any:
    """MONAI Dice + cross-entropy or Dice + focal loss on softmax outputs, batch Dice."""
    from monai.losses import DiceCELoss, DiceFocalLoss

    if name == "dice_ce":
        return DiceCELoss(include_background=include_background, to_onehot_y=True, softmax=True, batch=True)
    if name == "dice_focal":
        return DiceFocalLoss(include_background=include_background, to_onehot_y=True, softmax=True, batch=True,
                             gamma=2.0)
    raise ValueError(f"unknown loss {name!r}")


def make_batch(source: SampleSource, transform: Any, rng: np.random.Generator, batch_size: int) -> tuple[Any, Any]:
    """Stack ``batch_size`` augmented patches: images ``(B, C, *patch)``, labels ``(B, 1, *patch)``."""
    import torch

    images, labels = [], []
    for _ in range(batch_size):
        sample = transform(source.get(source.draw(rng, FOREGROUND_SHARE)))
        sample = sample[0] if isinstance(sample, list) else sample
        images.append(torch.as_tensor(np.asarray(sample["image"]), dtype=torch.float32))
        labels.append(torch.as_tensor(np.asarray(sample["label"])).long())
    return torch.stack(images), torch.stack(labels)


def validate(model: Any, volumes: list[Volume], config: NetConfig, axis: int | None, n_classes: int,
             first_class: int, device: Any, tta: bool = False) -> float:
    """Mean over ``volumes`` of the mean Dice of classes ``first_class`` and up."""
    from automed.deep.inference import predict_proba
    from automed.metrics import dice_per_class

    scores = [dice_per_class(predict_proba(model, v.image, config.patch, axis, device, tta).argmax(0), v.label,
                             n_classes)[first_class:].mean() for v in volumes]
    return float(np.mean(scores))


def train(config: NetConfig, schedule: Schedule, source: SampleSource, val: list[Volume], axis: int | None,
          n_classes: int, in_channels: int, folder: Path, seed: int, device: Any, include_background: bool,
          deadline: float | None = None, on_epoch: Callable[[int, float], None] | None = None) -> TrainResult:
    """Train (or continue training) a network; ``folder`` receives ``best.pt`` and ``last.pt``.

    A ``last.pt`` already in ``folder`` is resumed from: model, optimiser, scheduler and
    history are restored and the random streams are reseeded per epoch, so a resumed
    training continues as the interrupted one would have. ``on_epoch(epoch, value)`` is
    called after every epoch (replayed for restored epochs) and may raise to stop.
    """
    import torch

    from automed.deep.augment import training_transform
    from automed.nets import build_network

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = build_network(config, in_channels, n_classes).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.PolynomialLR(optimizer, total_iters=schedule.max_epochs, power=0.9)
    amp = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    loss_fn = training_loss(config, include_background)
    first_class = 0 if include_background else 1
    state = {"epoch": 0, "best_value": -math.inf, "best_epoch": -1, "history": [], "elapsed_s": 0.0,
             "batch_size": config.batch_size, "events": []}
    last = folder / "last.pt"
    state = resume(last, device, on_epoch, model=model, optimizer=optimizer, scheduler=scheduler,
                   scaler=scaler) or state
    started = time.monotonic() - state["elapsed_s"]
    stop_reason = "max epochs"
    for epoch in range(state["epoch"], schedule.max_epochs):
        if deadline is not None and time.monotonic() > deadline:
            stop_reason = "time allotment used"
            break
        torch.manual_seed(seed + epoch)
        rng = np.random.default_rng([seed, epoch])
        transform = training_transform(config.patch, config.augmentation, config.spatial_dims == 3, seed + epoch)
        model.train()
        for _ in range(schedule.iterations):
            images, labels = make_batch(source, transform, rng, state["batch_size"])
            try:
                train_step(model, optimizer, scaler, loss_fn, images.to(device), labels.to(device), amp)
            except torch.OutOfMemoryError:
                if state["batch_size"] == 1:
                    raise
                optimizer.zero_grad(set_to_none=True)
                torch.cuda.empty_cache()
                state["batch_size"] //= 2
                state["events"].append(f"CUDA out of memory at epoch {epoch}: batch halved to {state['batch_size']}")
                log.warning(state["events"][-1])
        scheduler.step()
        value = validate(model, val, config, axis, n_classes, first_class, device)
        state["history"].append(value)
        if value > state["best_value"]:
            state["best_value"], state["best_epoch"] = value, epoch
            save_checkpoint({"model": model.state_dict()}, folder / "best.pt")
        state["epoch"] = epoch + 1
        state["elapsed_s"] = time.monotonic() - started
        save_checkpoint({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
               "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "state": state}, last)
        if epoch % 10 == 0 or epoch + 1 == schedule.max_epochs:
            log.info("%s: epoch %d/%d, validation Dice %.4f (best %.4f at %d), %.0fs", folder.name, epoch + 1,
                     schedule.max_epochs, value, state["best_value"], state["best_epoch"] + 1, state["elapsed_s"])
        if on_epoch is not None:
            on_epoch(epoch, value)
        if epoch - state["best_epoch"] >= schedule.patience:
            stop_reason = f"early stopping (no gain for {schedule.patience} epochs)"
            break
    return TrainResult(state["best_value"], state["best_epoch"], state["epoch"], list(state["history"]),
                       time.monotonic() - started, stop_reason, state["batch_size"], list(state["events"]))


def training_loss(config: NetConfig, include_background: bool) -> Any:
    """The recipe's loss for the network of ``config`` (its architecture may combine deep-supervision heads)."""
    from automed.nets import architecture

    return architecture(config.architecture).training_loss(build_loss(config.loss, include_background))


def train_step(model: Any, optimizer: Any, scaler: Any, loss_fn: Any, images: Any, labels: Any, amp: bool) -> float:
    """One optimiser step (mixed precision when ``amp``, gradient norm clipped at 12); returns the loss."""
    import torch

    optimizer.zero_grad(set_to_none=True)
    with torch.autocast("cuda", enabled=amp):
        loss = loss_fn(model(images), labels)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    torch.nn.utils.clip_grad_norm_(model.parameters(), 12.0)
    scaler.step(optimizer)
    scaler.update()
    return float(loss.detach())


def resume(path: Path, device: Any, on_epoch: Callable[[int, float], None] | None, **parts: Any) -> dict | None:
    """Restore ``parts`` (name -> object with ``load_state_dict``) from the checkpoint ``path``.

    Returns the saved training state (None when there is no checkpoint) after replaying
    its per-epoch history to ``on_epoch``, so a pruner sees the same reports again.
    """
    import torch

    if not path.is_file():
        return None
    checkpoint = torch.load(path, map_location=device, weights_only=True)
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


# model.json files written before architectures became modules name a ``kind`` and hold its numbers
_LEGACY_KINDS = {"unet": ("automed.nets.unet:UNet", ("depth", "res_units")),
                 "unetpp": ("automed.nets.unetpp:UNetPlusPlus", ())}


def config_from_dict(values: dict[str, Any]) -> NetConfig:
    """The :class:`NetConfig` saved as a plain dict in ``model.json`` (older layouts included)."""
    values = dict(values)
    if "kind" in values:
        path, keys = _LEGACY_KINDS[values.pop("kind")]
        hp = {k: values[k] for k in keys}
        values = {k: v for k, v in values.items() if k not in ("depth", "res_units")}
        values.update(architecture=path, hp=hp)
    return NetConfig(**{**values, "patch": tuple(values["patch"])})
