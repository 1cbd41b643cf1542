"""pyradiomics features of an image inside a ROI (or the whole image)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

__all__ = ["radiomics_features", "RADIOMICS_CLASSES"]

RADIOMICS_CLASSES = ("firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm")


def radiomics_features(image: np.ndarray, mask: np.ndarray | None = None, bin_count: int = 32,
                       filters: Sequence[str] = (), log_sigmas: Sequence[float] = (1.0, 2.0)) -> dict[str, float]:
    """Radiomics features (first order and texture; shape when a mask is given).

    Parameters
    ----------
    image : ndarray
        2D or 3D image.
    mask : ndarray of bool, optional
        ROI. Without it the whole image is the ROI (and shape features are skipped,
        since they would only describe the image border).
    bin_count : int
        Grey levels for the texture matrices.
    filters : sequence of {"LoG", "Wavelet"}
        Extra filtered images to extract from, besides the original. (2D LoG images are
        computed with SciPy, since pyradiomics skips its LoG on small 2D images.)
    log_sigmas : sequence of float
        Sigmas (mm) of the LoG filter.
    """
    import SimpleITK as sitk
    from radiomics import featureextractor

    logging.getLogger("radiomics").setLevel(logging.ERROR)
    roi = np.ones(image.shape, dtype=np.uint8) if mask is None else mask.astype(np.uint8)
    settings = {"binCount": bin_count, "force2D": image.ndim == 2, "force2Ddimension": 0,
                "label": 1, "verbose": False, "minimumROIDimensions": 1, "preCrop": True}
    extractor = featureextractor.RadiomicsFeatureExtractor(**settings)
    extractor.disableAllFeatures()
    classes = list(RADIOMICS_CLASSES) + (["shape2D" if image.ndim == 2 else "shape"] if mask is not None else [])
    for name in classes:
        extractor.enableFeatureClassByName(name)
    extractor.disableAllImageTypes()
    extractor.enableImageTypeByName("Original")
    if "LoG" in filters and image.ndim == 3:
        extractor.enableImageTypeByName("LoG", customArgs={"sigma": list(log_sigmas)})
    if "Wavelet" in filters:
        extractor.enableImageTypeByName("Wavelet")
    mask_image = sitk.GetImageFromArray(roi[None] if image.ndim == 2 else roi)

    def extract(array: np.ndarray, prefix: str = "") -> dict[str, float]:
        as_3d = array[None] if array.ndim == 2 else array  # pyradiomics works on 3D; force2D handles 2D
        result = extractor.execute(sitk.GetImageFromArray(as_3d.astype(np.float32)), mask_image)
        return {prefix + k: float(v) for k, v in result.items() if not k.startswith("diagnostics_")}

    features = extract(image)
    if "LoG" in filters and image.ndim == 2:
        # pyradiomics skips its LoG filter on small 2D images ("Image too small to apply LoG
        # filter") without failing, so the 2D LoG images are computed here with SciPy.
        from scipy.ndimage import gaussian_laplace

        extractor.disableAllImageTypes()
        extractor.enableImageTypeByName("Original")
        for sigma in log_sigmas:
            filtered = gaussian_laplace(image.astype(np.float32), sigma)
            features |= {k.replace("original_", f"log-sigma-{sigma:g}_", 1): v
                         for k, v in extract(filtered).items() if k.startswith("original_")}
    return features
