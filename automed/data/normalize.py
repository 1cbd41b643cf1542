"""Intensity normalisation chosen by the fingerprint (the nnU-Net scheme)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the fingerprint chooses each channel's scheme with channel_scheme below
    from automed.data.fingerprint import Fingerprint

__all__ = ["SCHEMES", "channel_scheme", "normalize", "map_labels", "unmap_labels"]

#: nnU-Net's ``channel_names`` that name a normalisation scheme, and automed's name for it.
SCHEMES = {"ct": "ct", "zscore": "zscore", "nonorm": "none", "rescale_to_0_1": "minmax", "rgb_to_0_1": "rgb"}


def channel_scheme(channel_name: str, photograph: bool) -> str:
    """The normalisation of one channel, chosen by its name as nnU-Net does: ``CT``, ``zscore``,
    ``noNorm``, ``rescale_to_0_1``, ``rgb_to_0_1``; a photograph's channels scale to [0, 1]; any
    other name (``T1``, ``FLAIR``, ``MRI``, ...) is z-scored per case.

    Examples
    --------
    >>> [channel_scheme(n, False) for n in ("CT", "T1", "noNorm")]
    ['ct', 'zscore', 'none']
    """
    return "rgb" if photograph else SCHEMES.get(channel_name.lower(), "zscore")


def normalize(image: np.ndarray, fingerprint: Fingerprint) -> np.ndarray:
    """Normalise a ``(n_channels, *spatial)`` image channel by channel (``fingerprint.channel_normalization``).

    CT channels are clipped to the dataset's foreground [0.5, 99.5] percentiles and
    z-scored with the dataset's foreground mean and std (Hounsfield units mean the same
    in every scan). Photographs (R, G, B or their luminance) are divided by their format's
    largest value (255, or 65535 for 16-bit files) to [0, 1], as nnU-Net does, which keeps
    their colour comparable across cases. ``minmax`` scales each case to [0, 1], ``none``
    leaves it as stored, and every other channel is z-scored per case.
    """
    schemes = fingerprint.channel_normalization or (fingerprint.normalization,) * len(image)
    out = np.empty(image.shape, dtype=np.float32)
    for c, (channel, scheme) in enumerate(zip(image, schemes)):
        if scheme == "rgb":
            out[c] = channel / (255.0 if fingerprint.intensity[c]["max"] <= 255 else 65535.0)
        elif scheme == "ct":
            stats = fingerprint.intensity[c]
            clipped = np.clip(channel, stats["p00_5"], stats["p99_5"])
            out[c] = (clipped - stats["mean"]) / max(stats["std"], 1e-8)
        elif scheme == "minmax":
            low, high = float(channel.min()), float(channel.max())
            out[c] = (channel - low) / max(high - low, 1e-8)
        elif scheme == "none":
            out[c] = channel
        else:
            out[c] = (channel - channel.mean()) / max(float(channel.std()), 1e-8)
    return out


def map_labels(label: np.ndarray, mapping: dict[int, int]) -> np.ndarray:
    """Raw label values to consecutive class indices (uint8)."""
    lut = np.zeros(max(mapping) + 1, dtype=np.uint8)
    for raw, cls in mapping.items():
        lut[raw] = cls
    return lut[label]


def unmap_labels(pred: np.ndarray, mapping: dict[int, int]) -> np.ndarray:
    """Class indices back to the dataset's raw label values (inverse of :func:`map_labels`)."""
    dtype = np.uint8 if max(mapping) <= 255 else np.uint16
    inverse = np.zeros(max(mapping.values()) + 1, dtype=dtype)
    for raw, cls in mapping.items():
        inverse[cls] = raw
    return inverse[pred]
