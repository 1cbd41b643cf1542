"""Image classification with torch: arrays, networks, imbalance-aware losses, a resumable loop.

Every deep classification rung trains through :func:`train_classifier`: epochs of
:class:`~automed.deep.loop.EpochLoop` over the training images (uniform or class-balanced
sampling, MONAI augmentation), scored by validation AUC.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from automed.deep.augment import without_metadata
from automed.deep.loop import EpochLoop, LoopResult, train_step
from automed.deep.throughput import THROUGHPUT_FIELDS, count_step

__all__ = ["ClassifierConfig", "classifier_config_from_dict", "image_arrays", "mean_proba", "network_shape", "predict_proba", "resized",
           "train_classifier"]

log = logging.getLogger("automed")
OHEM_KEEP = 0.5  # share of the hardest samples of a batch whose loss is kept
FINETUNE_FACTOR = 0.1  # backbone learning rate relative to the head's when fine-tuning


@dataclass(frozen=True)
class ClassifierConfig:
    """Network, loss, sampling and optimiser of one classification training.

    ``architecture`` is an :mod:`automed.nets` path (``"automed.nets.resnet:ResNet"``) and ``hp``
    its own hyperparameters (ResNet ``width`` and ``depth``).
    """

    architecture: str
    spatial_dims: int
    hp: dict[str, Any]
    loss: str
    sampling: str
    lr: float
    batch_size: int
    augmentation: str
    weight_decay: float = 1e-4
    #: ``"scratch"``; transfer rungs: ``"frozen"`` (new head only) or ``"finetune"`` (backbone at 0.1 x lr).
    mode: str = "scratch"


# model.json files written before architectures became modules name an ``arch`` and hold ResNet's numbers
_LEGACY_ARCHS = {"resnet": "automed.nets.resnet:ResNet", "vgg16": "automed.nets.vgg16:VGG16",
                 "inception_v3": "automed.nets.inception_v3:InceptionV3"}


def classifier_config_from_dict(values: dict[str, Any]) -> ClassifierConfig:
    """The :class:`ClassifierConfig` saved as a plain dict in ``model.json`` (older layouts included)."""
    values = dict(values)
    if "arch" in values:
        arch, width, depth = values.pop("arch"), values.pop("width"), values.pop("depth")
        values.update(architecture=_LEGACY_ARCHS[arch], hp={"width": width, "depth": depth} if arch == "resnet" else {})
    return ClassifierConfig(**values)


def image_arrays(dataset: Any, cases: list[Any], shape: tuple[int, ...] | None = None,
                 max_side: int | None = None) -> np.ndarray:
    """Images of ``cases`` stacked as ``(N, C, *shape)`` float32.

    ``shape`` (None: :func:`network_shape` of these images) is the spatial shape every image is
    resized to (anti-aliased, values kept) unless it already has it.
    """
    from automed.data.classification import load_image

    images = [load_image(dataset, case) for case in cases]
    if shape is None:
        shape = network_shape([im.shape[1:] for im in images], max_side)
    return np.stack([resized(im, tuple(shape)) for im in images]).astype(np.float32, copy=False)


def network_shape(shapes: Sequence[tuple[int, ...]], max_side: int | None = None) -> tuple[int, ...]:
    """The one spatial shape images are given to a network: their shape if they share one, else
    their median shape; scaled down (aspect kept) so its longest side is at most ``max_side``.

    Examples
    --------
    >>> network_shape([(575, 765), (572, 764), (576, 767)], 128)
    (96, 128)
    """
    median = np.median(np.array(shapes, dtype=float), axis=0)
    scale = 1.0 if max_side is None else min(1.0, max_side / median.max())
    return tuple(max(1, int(round(side * scale))) for side in median)


def resized(image: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A ``(C, *spatial)`` image at spatial ``shape`` (anti-aliased linear interpolation, values kept)."""
    from skimage.transform import resize

    if image.shape[1:] == tuple(shape):
        return image
    return resize(image, (len(image), *shape), order=1, anti_aliasing=True, preserve_range=True).astype(np.float32)


def channel_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Mean and standard deviation of each channel of ``(N, C, *spatial)`` images."""
    axes = (0, *range(2, images.ndim))
    return images.mean(axis=axes).tolist(), images.std(axis=axes).tolist()


def standardize(images: np.ndarray, mean: float | Sequence[float], std: float | Sequence[float]) -> np.ndarray:
    """``(N, C, *spatial)`` images z-scored per channel (one ``mean`` and ``std`` per channel, or one for all)."""
    shape = (1, -1) + (1,) * (images.ndim - 2)
    mean = np.reshape(np.asarray(mean, dtype=np.float32), shape)
    std = np.reshape(np.maximum(np.asarray(std, dtype=np.float32), 1e-6), shape)
    return ((images - mean) / std).astype(np.float32, copy=False)


def build_loss(name: str, class_counts: np.ndarray) -> Callable[[Any, Any], Any]:
    """Cross-entropy, class-weighted cross-entropy, MONAI focal loss, cross-entropy with
    online hard example mining (the mean over the hardest half of each batch; hand-written:
    neither torch nor MONAI has it for classification), or, for ordered classes, the squared
    earth mover's distance (:func:`automed.models.ordinal.squared_emd_loss`)."""
    import torch
    from monai.losses import FocalLoss

    if name == "ce":
        return torch.nn.CrossEntropyLoss()
    if name == "weighted_ce":
        weight = class_counts.sum() / (len(class_counts) * np.maximum(class_counts, 1))
        return torch.nn.CrossEntropyLoss(weight=torch.as_tensor(weight, dtype=torch.float32))
    if name == "focal":
        focal = FocalLoss(to_onehot_y=True, use_softmax=True, gamma=2.0)
        return lambda logits, y: focal(logits, y[:, None])
    if name == "ohem":
        per_sample = torch.nn.CrossEntropyLoss(reduction="none")

        def ohem(logits: Any, y: Any) -> Any:
            losses = per_sample(logits, y)
            keep = max(1, math.ceil(OHEM_KEEP * len(losses)))
            return losses.topk(keep).values.mean()
        return ohem
    if name == "emd":
        from automed.models.ordinal import squared_emd_loss

        return squared_emd_loss
    raise ValueError(f"unknown loss {name!r}")


def _augmenter(strength: str, spatial_dims: int, seed: int) -> Any:
    """MONAI array transforms on one ``(C, *spatial)`` image: flips, small rotations/zooms, noise."""
    from monai.transforms import Compose, RandAffine, RandFlip, RandGaussianNoise

    if strength == "none":
        return None
    p = 0.5 if strength == "medium" else 0.25
    angle = math.radians(15 if strength == "medium" else 8)
    rotate = angle if spatial_dims == 2 else (angle, angle, angle)
    steps = [RandFlip(prob=0.5, spatial_axis=axis) for axis in range(spatial_dims)]
    steps += [RandAffine(prob=p, rotate_range=rotate, scale_range=0.1, padding_mode="border"),
              RandGaussianNoise(prob=p, std=0.05)]
    transform = Compose(steps)
    transform.set_random_state(seed=seed)
    return without_metadata(transform)


def _batches(labels: np.ndarray, batch_size: int, sampling: str, rng: np.random.Generator) -> list[np.ndarray]:
    """One epoch of index batches: a shuffled pass, or class-balanced draws of the same size."""
    n = len(labels)
    if sampling == "balanced":
        counts = np.bincount(labels)
        weights = 1.0 / counts[labels]
        order = rng.choice(n, size=n, replace=True, p=weights / weights.sum())
    else:
        order = rng.permutation(n)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def predict_proba(model: Any, images: np.ndarray, device: Any, tta: bool = False, batch_size: int = 256) -> np.ndarray:
    """Softmax probabilities ``(N, n_classes)``.

    ``tta`` averages them over the images mirrored along every combination of spatial axes,
    the flips the networks are trained with (test-time augmentation).
    """
    import torch

    spatial = list(range(2, images.ndim))
    flips = [()] + [c for r in range(1, len(spatial) + 1) for c in itertools.combinations(spatial, r)] if tta else [()]
    model.eval()
    out = []
    with torch.no_grad(), torch.autocast(device.type, enabled=device.type == "cuda"):
        for i in range(0, len(images), batch_size):
            x = torch.from_numpy(images[i:i + batch_size]).to(device)
            proba = sum(torch.softmax(model(torch.flip(x, dims) if dims else x).float(), dim=1) for dims in flips)
            out.append((proba / len(flips)).cpu().numpy())
    return np.concatenate(out)


def mean_proba(models: Sequence[Any], images: np.ndarray, device: Any, tta: bool = False) -> np.ndarray:
    """The mean of :func:`predict_proba` over ``models`` (the members of a deep ensemble)."""
    return np.mean([predict_proba(model, images, device, tta) for model in models], axis=0)


def val_auc(y: np.ndarray, proba: np.ndarray) -> float:
    """AUC (macro one-vs-rest) of validation predictions; 0.5 when undefined."""
    from automed.metrics import classification_scores

    auc = classification_scores(y, proba, None)["auc"]
    return 0.5 if math.isnan(auc) else auc


def train_classifier(config: ClassifierConfig, max_epochs: int, patience: int, train: tuple[np.ndarray, np.ndarray],
                     val: tuple[np.ndarray, np.ndarray], n_classes: int, folder: Path, seed: int, device: Any,
                     deadline: float | None = None, on_epoch: Callable[[int, float], None] | None = None,
                     model: Any = None, fit_seconds: float | None = None, epoch_cap: int | None = None) -> LoopResult:
    """Train (or continue from ``folder/last.pt``) a classifier; keep the epoch with the best validation AUC.

    The epochs go through :class:`~automed.deep.loop.EpochLoop`; an epoch here is one pass
    of (uniform or class-balanced) batches of augmented images. ``model`` replaces the
    network built from ``config`` (e.g. a pretrained encoder). On CUDA out of memory the
    batch is retried in halves, the halved size kept and the event recorded (``state``). With
    ``fit_seconds`` the epochs are re-planned from the measured epoch time, up to ``epoch_cap``.
    """
    import torch

    from automed.nets import build_classifier

    torch.manual_seed(seed)
    x_train, y_train = train
    model = (model if model is not None else build_classifier(config, x_train.shape[1], n_classes)).to(device)
    params = (model.param_groups(config.lr, 0.0 if config.mode == "frozen" else FINETUNE_FACTOR)
              if hasattr(model, "param_groups") else model.parameters())
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max_epochs)
    loss_fn = build_loss(config.loss, np.bincount(y_train, minlength=n_classes))
    if hasattr(loss_fn, "to"):
        loss_fn = loss_fn.to(device)
    amp = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=amp)

    def run_epoch(epoch: int, rng: np.random.Generator, state: dict[str, Any]) -> float:
        augment = _augmenter(config.augmentation, config.spatial_dims, seed + epoch)
        losses = []
        queue = _batches(y_train, state["batch_size"], config.sampling, rng)
        while queue:
            index = queue.pop(0)
            started = time.perf_counter()
            x = x_train[index] if augment is None else np.stack([np.asarray(augment(im)) for im in x_train[index]])
            sampled = time.perf_counter()
            try:
                losses.append(train_step(model, optimizer, scaler, loss_fn, torch.as_tensor(x, dtype=torch.float32,
                                         device=device), torch.as_tensor(y_train[index], device=device), amp))
            except torch.OutOfMemoryError:
                if len(index) == 1:
                    raise
                optimizer.zero_grad(set_to_none=True)
                torch.cuda.empty_cache()
                half = len(index) // 2
                state["batch_size"] = half  # this batch is retried in halves; the next epochs draw halves
                queue[:0] = [index[:half], index[half:]]
                state["events"].append(f"CUDA out of memory at epoch {epoch}: batch halved to {half}")
                log.warning(state["events"][-1])
                continue
            count_step(state, x.shape[0] * int(np.prod(x.shape[2:])), sampled - started, time.perf_counter() - sampled)
        return float(np.mean(losses))

    loop = EpochLoop(folder, {"model": model, "optimizer": optimizer, "scheduler": scheduler, "scaler": scaler},
                     max_epochs, seed, run_epoch, lambda: val_auc(val[1], predict_proba(model, val[0], device)),
                     patience, deadline, on_epoch=on_epoch, label="validation AUC",
                     extra_state={"batch_size": config.batch_size, "events": [], **dict.fromkeys(THROUGHPUT_FIELDS, 0)},
                     fit_seconds=fit_seconds, epoch_cap=epoch_cap)
    return loop.run(device)
