"""Cheap whole-image (or ROI) features from scikit-image for classification."""

from __future__ import annotations

import numpy as np

__all__ = ["texture_features"]


def texture_features(image: np.ndarray, mask: np.ndarray | None = None, n_bins: int = 16,
                     pixels_side: int = 14) -> dict[str, float]:
    """Intensity histogram, LBP histograms, GLCM properties, HOG (2D) and down-sampled pixels.

    Parameters
    ----------
    image : ndarray
        2D or 3D image, any intensity range (rescaled to [0, 1] per image).
    mask : ndarray of bool, optional
        ROI; histograms are computed inside it. Texture and pixels use the whole image.
    n_bins : int
        Bins of the intensity histogram.
    pixels_side : int
        Side of the down-sampled pixel grid appended as raw features.

    Returns
    -------
    dict
        Feature name -> value, the same names for every image of the same dimensionality.
    """
    from skimage.feature import graycomatrix, graycoprops, hog, local_binary_pattern
    from skimage.transform import resize

    low, high = float(image.min()), float(image.max())
    scaled = (image - low) / (high - low) if high > low else np.zeros_like(image, dtype=np.float32)
    inside = scaled[mask] if mask is not None else scaled.ravel()
    out: dict[str, float] = {}
    hist, _ = np.histogram(inside, bins=n_bins, range=(0, 1))
    out |= {f"hist_{i:02d}": v / max(inside.size, 1) for i, v in enumerate(hist)}
    out |= {f"intensity_{name}": float(fn(inside)) for name, fn in
            (("mean", np.mean), ("std", np.std), ("p10", lambda a: np.percentile(a, 10)),
             ("p50", np.median), ("p90", lambda a: np.percentile(a, 90)))}
    grey = np.round(scaled * 255).astype(np.uint8)
    slices = [grey] if grey.ndim == 2 else [grey[i] for i in range(grey.shape[0])]  # 3D: axial slices
    for points, radius in ((8, 1), (16, 2)):
        codes = np.concatenate([local_binary_pattern(s, points, radius, method="uniform").ravel() for s in slices])
        hist, _ = np.histogram(codes, bins=points + 2, range=(0, points + 2))
        out |= {f"lbp{points}_{i:02d}": v / codes.size for i, v in enumerate(hist)}
    levels = 32
    quantised = [(s // (256 // levels)).astype(np.uint8) for s in slices]
    props = ("contrast", "dissimilarity", "homogeneity", "energy", "correlation", "ASM")
    for distance in (1, 3):
        glcm = sum(graycomatrix(q, [distance], [0, np.pi / 4, np.pi / 2, 3 * np.pi / 4], levels=levels,
                                symmetric=True, normed=False) for q in quantised).astype(float)
        glcm /= max(glcm.sum(axis=(0, 1), keepdims=True).min(), 1.0)
        out |= {f"glcm_d{distance}_{p}": float(np.nan_to_num(graycoprops(glcm, p).mean())) for p in props}
    if image.ndim == 2:
        descriptor = hog(resize(scaled, (32, 32), anti_aliasing=True), orientations=8, pixels_per_cell=(8, 8),
                         cells_per_block=(2, 2), feature_vector=True)
        out |= {f"hog_{i:03d}": float(v) for i, v in enumerate(descriptor)}
    small = resize(scaled, (pixels_side,) * image.ndim, anti_aliasing=True)
    out |= {f"pixel_{i:04d}": float(v) for i, v in enumerate(small.ravel())}
    return out
