"""Self-supervised pretraining in the style of Models Genesis (Zhou et al., 2019).

An encoder-decoder learns to restore images corrupted by a non-linear intensity
transform, local pixel shuffling, and in-painting or out-painting. The corruptions are
MONAI transforms (``RandHistogramShift``, ``RandCoarseShuffle``, ``RandCoarseDropout``
with holes dropped or kept); the encoder is the classification ResNet, whose weights
then initialise the classifier.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from automed.deep.augment import without_metadata
from automed.deep.loop import EpochLoop, train_step

__all__ = ["RestorationNet", "corruptor", "pretrain"]

log = logging.getLogger("automed")


def corruptor(spatial_shape: tuple[int, ...], seed: int) -> Any:
    """The Models Genesis corruptions of one ``(C, *spatial)`` image, each applied at random."""
    from monai.transforms import Compose, OneOf, RandCoarseDropout, RandCoarseShuffle, RandHistogramShift

    side = [max(1, s // 8) for s in spatial_shape]
    big = [max(1, s // 3) for s in spatial_shape]
    transform = Compose([
        RandHistogramShift(num_control_points=(4, 8), prob=0.9),                          # non-linear intensity
        RandCoarseShuffle(holes=8, spatial_size=side, max_holes=32, prob=0.5),            # local pixel shuffling
        OneOf([RandCoarseDropout(holes=3, spatial_size=side, max_spatial_size=big, fill_value=(-2.0, 2.0),
                                 max_holes=6, prob=0.8),                                  # in-painting
               RandCoarseDropout(holes=1, spatial_size=big, dropout_holes=False, fill_value=(-2.0, 2.0),
                                 max_spatial_size=[max(1, 2 * s // 3) for s in spatial_shape], prob=0.8)]),  # out-painting
    ])
    transform.set_random_state(seed=seed)
    return without_metadata(transform)


class RestorationNet(torch.nn.Module):
    """The classifier's ResNet trunk as encoder, upsampling convolutions as decoder."""

    def __init__(self, classifier: Any, spatial_dims: int) -> None:
        super().__init__()
        self.encoder = classifier
        conv = torch.nn.Conv2d if spatial_dims == 2 else torch.nn.Conv3d
        width = classifier.fc.in_features
        self.decoder = torch.nn.Sequential(conv(width, width // 2, 3, padding=1), torch.nn.ReLU(),
                                           conv(width // 2, width // 4, 3, padding=1), torch.nn.ReLU(),
                                           conv(width // 4, classifier.conv1.in_channels, 1))

    def forward(self, x: Any) -> Any:
        e = self.encoder
        h = e.act(e.bn1(e.conv1(x)))
        h = e.layer4(e.layer3(e.layer2(e.layer1(h))))
        mode = "bilinear" if x.ndim == 4 else "trilinear"
        return F.interpolate(self.decoder(h), size=x.shape[2:], mode=mode, align_corners=False)


def pretrain(classifier: Any, images: np.ndarray, seconds: float, max_epochs: int, batch_size: int, lr: float,
             folder: Path, seed: int, device: Any) -> dict[str, Any]:
    """Train ``classifier``'s encoder to restore corrupted ``images`` for at most ``seconds``.

    Resumes from ``folder/last.pt``. Returns ``{"epochs", "seconds", "history"}`` (mean
    squared restoration error per epoch).
    """
    torch.manual_seed(seed)
    net = RestorationNet(classifier, images.ndim - 2).to(device)
    optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-5)
    scaler = torch.amp.GradScaler("cuda", enabled=False)

    def run_epoch(epoch: int, rng: np.random.Generator, state: dict[str, Any]) -> float:
        corrupt = corruptor(images.shape[2:], seed + epoch)
        losses = []
        order = rng.permutation(len(images))
        for start in range(0, len(images), batch_size):
            batch = images[order[start:start + batch_size]]
            corrupted = np.stack([np.asarray(corrupt(im)) for im in batch])
            losses.append(train_step(net, optimizer, scaler, F.mse_loss,
                                     torch.as_tensor(corrupted, dtype=torch.float32, device=device),
                                     torch.as_tensor(batch, dtype=torch.float32, device=device), False))
        return float(np.mean(losses))

    loop = EpochLoop(folder, {"model": net, "optimizer": optimizer}, max_epochs, seed, run_epoch,
                     max_seconds=seconds, label="restoration MSE")
    result = loop.run(device)
    history = result.history
    return {"epochs": result.epochs, "seconds": result.seconds, "history": history,
            "restoration_mse_first_last": [history[0], history[-1]] if history else None,
            "steps_per_epoch": math.ceil(len(images) / batch_size)}
