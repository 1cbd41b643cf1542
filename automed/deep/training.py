"""Training of the deep segmentation networks: configuration, losses, patch batches, validation.

Per epoch of :class:`~automed.deep.loop.EpochLoop`: ``iterations`` optimiser steps on
augmented patches, a poly learning-rate step and validation Dice on whole validation images.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from automed.deep.loop import EpochLoop, LoopResult, cpu_layout, train_step
from automed.deep.throughput import THROUGHPUT_FIELDS, count_step
from automed.deep.volumes import SampleSource, Volume

__all__ = ["CLIP_NORM", "NetConfig", "Schedule", "build_loss", "config_from_dict", "make_batch",
           "train", "training_loss", "validate"]

log = logging.getLogger("automed")
CLIP_NORM = 12.0  # gradient-norm clip of every segmentation step, as nnU-Net clips
#: Batches drawn ahead of the training step on a background thread (0: drawn in turn).
PREFETCH_BATCHES = 2
FOREGROUND_SHARE = 1 / 3  # share of 2D training slices drawn from slices with foreground (as nnU-Net oversamples)


@dataclass(frozen=True)
class NetConfig:
    """Network, loss, optimiser and sampling of one training.

    ``architecture`` is an :mod:`automed.nets` path (``"automed.nets.unet:UNet"``), ``width`` its
    first-level channels and ``hp`` its own hyperparameters (e.g. U-Net ``depth``, ``res_units``).
    ``cpu_bfloat16`` trains and predicts under bfloat16 autocast on a CPU (CUDA always uses AMP).
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
    cpu_bfloat16: bool = False


@dataclass(frozen=True)
class Schedule:
    """How long a training runs: epochs of ``iterations`` steps, stopped early after ``patience`` epochs
    without a validation gain (``None``: never)."""

    max_epochs: int
    iterations: int
    patience: int | None


def build_loss(name: str, include_background: bool) -> Any:
    """MONAI Dice + cross-entropy or Dice + focal loss on softmax outputs, batch Dice."""
    from monai.losses import DiceCELoss, DiceFocalLoss

    if name == "dice_ce":
        return DiceCELoss(include_background=include_background, to_onehot_y=True, softmax=True, batch=True)
    if name == "dice_focal":
        return DiceFocalLoss(include_background=include_background, to_onehot_y=True, softmax=True, batch=True,
                             gamma=2.0)
    raise ValueError(f"unknown loss {name!r}")


def make_batch(source: SampleSource, transform: Any, rng: np.random.Generator, batch_size: int,
               patch: tuple[int, ...]) -> tuple[Any, Any]:
    """Stack ``batch_size`` augmented patches: images ``(B, C, *patch)``, labels ``(B, 1, *patch)``.

    For a 3D patch, volumes larger than it are read only within a window of it (see
    :meth:`SampleSource.get`); 2D items are whole slices or images, cropped by ``transform``.
    """
    import torch

    images, labels = [], []
    for _ in range(batch_size):
        window = tuple(patch) if len(patch) == 3 else None
        sample = transform(source.get(source.draw(rng, FOREGROUND_SHARE), window, rng))
        images.append(torch.as_tensor(np.asarray(sample["image"]), dtype=torch.float32))
        labels.append(torch.as_tensor(np.asarray(sample["label"])).long())
    return torch.stack(images), torch.stack(labels)


def drawn_batches(draw: Callable[[], Any], n: int, prefetch: int) -> Any:
    """``n`` results of ``draw()``, in order; with ``prefetch`` > 0 drawn up to that many ahead on
    a background thread (MONAI's ``ThreadBuffer``), an error there raised here."""
    def produce() -> Any:
        for _ in range(n):
            try:
                yield draw(), None
            except Exception as exc:  # handed to the training thread, which raises it
                yield None, exc
                return

    items = produce()
    if prefetch > 0:
        from monai.data import ThreadBuffer

        items = ThreadBuffer(items, buffer_size=prefetch)
    for batch, error in items:
        if error is not None:
            raise error
        yield batch


def validate(model: Any, volumes: list[Volume], config: NetConfig, axis: int | None, n_classes: int,
             first_class: int, device: Any, tta: bool = False) -> float:
    """Mean over ``volumes`` of the mean Dice of classes ``first_class`` and up."""
    from automed.deep.inference import predict_proba
    from automed.metrics import dice_per_class

    scores = [dice_per_class(predict_proba(model, v.image, config.patch, axis, device, tta,
                                           bfloat16=config.cpu_bfloat16).argmax(0), v.label,
                             n_classes)[first_class:].mean() for v in volumes]
    return float(np.mean(scores))


def train(config: NetConfig, schedule: Schedule, source: SampleSource, val: list[Volume], axis: int | None,
          n_classes: int, in_channels: int, folder: Path, seed: int, device: Any, include_background: bool,
          deadline: float | None = None, on_epoch: Callable[[int, float], None] | None = None,
          prefetch: int = PREFETCH_BATCHES, fit_seconds: float | None = None, epoch_cap: int | None = None
          ) -> LoopResult:
    """Train (or continue training) a network; ``folder`` receives ``best.pt`` and ``last.pt``.

    The epochs go through :class:`~automed.deep.loop.EpochLoop` (resume, checkpoints, early
    stopping); an epoch here is ``schedule.iterations`` steps on augmented patches, scored by
    validation Dice. With ``prefetch`` > 0, that many batches are drawn ahead on a background
    thread while the network trains (the same batches, in the same order, as drawn in turn).
    On CUDA out of memory the batch is halved and training goes on. With ``fit_seconds`` the
    epochs are re-planned from the measured epoch time, up to ``epoch_cap`` (see :class:`EpochLoop`).
    """
    import torch

    from automed.deep.augment import training_transform
    from automed.nets import build_network

    torch.manual_seed(seed)
    model = cpu_layout(build_network(config, in_channels, n_classes).to(device), config.spatial_dims, device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.PolynomialLR(optimizer, total_iters=schedule.max_epochs, power=0.9)
    amp = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    loss_fn = training_loss(config, include_background)
    first_class = 0 if include_background else 1

    def run_epoch(epoch: int, rng: np.random.Generator, state: dict[str, Any]) -> float:
        transform = training_transform(config.patch, config.augmentation, seed + epoch)
        losses = []
        batches = iter(drawn_batches(lambda: make_batch(source, transform, rng, state["batch_size"], config.patch),
                                     schedule.iterations, prefetch))
        for _ in range(schedule.iterations):
            started = time.perf_counter()
            images, labels = next(batches)
            images, labels = images[:state["batch_size"]], labels[:state["batch_size"]]  # drawn before a halving
            sampled = time.perf_counter()
            try:
                losses.append(train_step(model, optimizer, scaler, loss_fn,
                                         cpu_layout(images.to(device), config.spatial_dims, device), labels.to(device), amp,
                                         CLIP_NORM, config.cpu_bfloat16))
                # train_step's loss.item() waits for the device, so the step's time is its own
                count_step(state, labels.numel(), sampled - started, time.perf_counter() - sampled)
            except torch.OutOfMemoryError:
                if state["batch_size"] == 1:
                    raise
                optimizer.zero_grad(set_to_none=True)
                torch.cuda.empty_cache()
                state["batch_size"] //= 2
                state["events"].append(f"CUDA out of memory at epoch {epoch}: batch halved to {state['batch_size']}")
                log.warning(state["events"][-1])
        return float(np.mean(losses)) if losses else math.nan

    loop = EpochLoop(folder, {"model": model, "optimizer": optimizer, "scheduler": scheduler, "scaler": scaler},
                     schedule.max_epochs, seed, run_epoch,
                     lambda: validate(model, val, config, axis, n_classes, first_class, device),
                     schedule.patience, deadline, on_epoch=on_epoch, label="validation Dice",
                     extra_state={"batch_size": config.batch_size, "events": [], **dict.fromkeys(THROUGHPUT_FIELDS, 0)},
                     fit_seconds=fit_seconds, epoch_cap=epoch_cap)
    return loop.run(device)


def training_loss(config: NetConfig, include_background: bool) -> Any:
    """The recipe's loss for the network of ``config`` (its architecture may combine deep-supervision heads)."""
    from automed.nets import architecture

    return architecture(config.architecture).training_loss(build_loss(config.loss, include_background))


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
