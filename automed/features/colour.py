"""Colour features of a photograph in CIE L*a*b*, a perceptual colour space.

Dermoscopy and endoscopy are read by colour (blue-white veil, redness, pigment), and in L*a*b*
equal distances are roughly equal perceived differences, unlike in R, G, B.
"""

from __future__ import annotations

import numpy as np

__all__ = ["lab_features", "to_lab"]

# Ranges of the L*a*b* histograms: L* spans 0 to 100; a* and b* of real photographs stay within +-80
LAB_RANGES = {"L": (0.0, 100.0), "a": (-80.0, 80.0), "b": (-80.0, 80.0)}


def to_lab(rgb: np.ndarray) -> np.ndarray:
    """``(3, ...)`` R, G, B (0 to 255, or 0 to 1 when no value exceeds 1) as ``(3, ...)`` L*, a*, b*."""
    from skimage.color import rgb2lab

    scale = 255.0 if float(rgb.max()) > 1.0 else 1.0
    return np.moveaxis(rgb2lab(np.clip(np.moveaxis(rgb, 0, -1) / scale, 0.0, 1.0)), -1, 0)


def lab_features(rgb: np.ndarray, mask: np.ndarray | None = None, n_bins: int = 16) -> dict[str, float]:
    """Percentiles, spread and histograms of L*, a* and b* inside ``mask`` (or the whole image).

    Parameters
    ----------
    rgb : ndarray
        ``(3, H, W)`` R, G and B channels.
    mask : ndarray of bool, optional
        ROI ``(H, W)``.
    n_bins : int
        Bins of each channel's histogram, over :data:`LAB_RANGES`.

    Returns
    -------
    dict
        Feature name (``lab_a_p50``, ``lab_b_hist_03``, ...) -> value.
    """
    lab = to_lab(rgb)
    out: dict[str, float] = {}
    for name, channel in zip("Lab", lab):
        inside = channel[mask] if mask is not None else channel.ravel()
        p10, p50, p90 = np.percentile(inside, (10, 50, 90))
        out |= {f"lab_{name}_mean": float(inside.mean()), f"lab_{name}_std": float(inside.std()),
                f"lab_{name}_p10": float(p10), f"lab_{name}_p50": float(p50), f"lab_{name}_p90": float(p90)}
        hist, _ = np.histogram(inside, bins=n_bins, range=LAB_RANGES[name])
        out |= {f"lab_{name}_hist_{i:02d}": v / max(inside.size, 1) for i, v in enumerate(hist)}
    chroma = np.hypot(lab[1], lab[2])
    inside = chroma[mask] if mask is not None else chroma.ravel()
    out |= {"lab_chroma_mean": float(inside.mean()), "lab_chroma_p90": float(np.percentile(inside, 90))}
    return out
