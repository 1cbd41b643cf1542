"""Intensity normalisation chosen by the fingerprint (the nnU-Net scheme)."""

from __future__ import annotations

import numpy as np

from automed.data.fingerprint import Fingerprint

__all__ = ["normalize", "map_labels", "unmap_labels"]


def normalize(image: np.ndarray, fingerprint: Fingerprint) -> np.ndarray:
    """Normalise a ``(n_channels, *spatial)`` image channel by channel.

    CT channels are clipped to the dataset's foreground [0.5, 99.5] percentiles and
    z-scored with the dataset's foreground mean and std (Hounsfield units mean the same
    in every scan). Photographs (R, G, B or their luminance) are divided by their format's
    largest value (255, or 65535 for 16-bit files) to [0, 1], as nnU-Net does, which keeps
    their colour comparable across cases. Every other modality is z-scored per case.
    """
    out = np.empty(image.shape, dtype=np.float32)
    for c, channel in enumerate(image):
        if fingerprint.normalization == "rgb":
            out[c] = channel / (255.0 if fingerprint.intensity[c]["max"] <= 255 else 65535.0)
        elif fingerprint.normalization == "ct":
            stats = fingerprint.intensity[c]
            clipped = np.clip(channel, stats["p00_5"], stats["p99_5"])
            out[c] = (clipped - stats["mean"]) / max(stats["std"], 1e-8)
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
