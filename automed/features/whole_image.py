"""Whole-image (or ROI) features of one classification image: per channel, plus colour."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from automed.data.io import COLOUR_CHANNELS

__all__ = ["image_features"]


def image_features(image: np.ndarray, mask: np.ndarray | None, feature_sets: Sequence[str], bin_count: int = 32,
                   radiomics_filters: Sequence[str] = (), pixels_side: int = 14, lab: bool = True) -> dict[str, float]:
    """pyradiomics and/or scikit-image features of each channel of ``image``.

    Parameters
    ----------
    image : ndarray
        ``(C, *spatial)``, 2D or 3D; one channel (grey) or three (R, G, B).
    mask : ndarray of bool, optional
        ROI of shape ``spatial``.
    feature_sets : sequence of {"radiomics", "texture"}
        See :func:`automed.features.radiomics.radiomics_features` and
        :func:`automed.features.texture.texture_features`.
    bin_count, radiomics_filters, pixels_side
        Passed to those functions.
    lab : bool
        Colour images: also the CIE L*a*b* statistics of :func:`automed.features.colour.lab_features`.

    Returns
    -------
    dict
        Feature name -> value. A grey image's names carry no channel prefix (as before colour
        was read); a colour image's carry ``R_``, ``G_`` and ``B_``.
    """
    from automed.features.colour import lab_features
    from automed.features.radiomics import radiomics_features
    from automed.features.texture import texture_features

    prefixes = [""] if len(image) == 1 else [f"{name}_" for name in COLOUR_CHANNELS[:len(image)]]
    out: dict[str, float] = {}
    for prefix, channel in zip(prefixes, image):
        if "radiomics" in feature_sets:
            rad = radiomics_features(channel, mask, bin_count, radiomics_filters)
            out |= {f"{prefix}radiomics_{k}": v for k, v in rad.items()}
        if "texture" in feature_sets:
            out |= {f"{prefix}texture_{k}": v for k, v in texture_features(channel, mask, pixels_side=pixels_side).items()}
    if lab and len(image) == 3:
        out |= lab_features(image, mask)
    return out
