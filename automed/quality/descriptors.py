"""What an image looks like to a model, in a few numbers: per channel the intensity distribution, its bright tail,
noise and edge strength, and the grid's shape and spacing. Two scanners, a shifted contrast or a pasted artefact
move them; the training cases' spread says how far is unusual (:mod:`automed.quality.reference`)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["MAX_VOXELS", "descriptor_names", "image_descriptors"]

QUANTILES = (1, 5, 25, 50, 75, 95, 99)
MAX_VOXELS = 2**21
"""Larger images are described from a strided copy of about this many voxels (the statistics change little)."""
PER_CHANNEL = (*(f"q{q:02d}" for q in QUANTILES), "bright_tail", "noise", "edges")


def descriptor_names(n_channels: int, dims: int) -> list[str]:
    """The names of :func:`image_descriptors`' values, in order."""
    channels = [f"channel{c}_{name}" for c in range(n_channels) for name in PER_CHANNEL]
    return channels + [f"log_size_axis{a}" for a in range(dims)] + [f"log_spacing_axis{a}" for a in range(dims)]


def image_descriptors(image: np.ndarray, spacing: Sequence[float] | None = None) -> np.ndarray:
    """The descriptors of an image ``(channels, *spatial)`` as the model is given it (normalised), on the grid of
    ``spacing`` (array axis order; unit spacing when None).

    Per channel: the 1st to 99th intensity percentiles; the bright tail (maximum above the 99th percentile, in
    interquartile ranges: a metal-like blob); the noise (wavelet estimate of its standard deviation,
    :func:`skimage.restoration.estimate_sigma`) and the mean gradient magnitude, both in interquartile ranges
    (contrast against sharpness and noise). Then the log of each axis's size and spacing.
    """
    from skimage.restoration import estimate_sigma

    spatial = image.shape[1:]
    step = max(1, int(np.ceil((int(np.prod(spatial)) / MAX_VOXELS) ** (1 / len(spatial)))))
    small = image[(slice(None), *[slice(None, None, step)] * len(spatial))].astype(np.float64, copy=False)
    values: list[float] = []
    for channel in small:
        q = np.percentile(channel, QUANTILES)
        spread = max(float(q[4] - q[2]), float(q[-1] - q[0]) / 10, 1e-6)  # IQR; a mostly flat image: 1/10 range
        gradient = np.sqrt(sum(g**2 for g in np.gradient(channel))) if min(channel.shape) > 1 else np.zeros(1)
        values += [*q, (float(channel.max()) - q[-1]) / spread, float(estimate_sigma(channel)) / spread,
                   float(gradient.mean()) / spread]
    spacing = tuple(spacing) if spacing is not None else (1.0,) * len(spatial)
    values += [float(np.log(s)) for s in spatial] + [float(np.log(max(s, 1e-6))) for s in spacing]
    return np.asarray(values, dtype=np.float64)
