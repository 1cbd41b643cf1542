"""A run's segmentation cases on its working grid: the image, the label as class indices, and a rung's saved
out-of-fold mask (``rungs/<name>/oof/``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from automed.errors import AutomedError

__all__ = ["image_and_truth", "saved_prediction"]


def image_and_truth(case: Any, fingerprint: Any) -> tuple[np.ndarray, np.ndarray]:
    """The case's image (channels first) and class map on the working grid."""
    from automed.data.loading import load_case
    from automed.data.normalize import map_labels

    loaded = load_case(case, fingerprint.n_channels, fingerprint.channels_in_one_file, fingerprint.target_spacing)
    return loaded.image, map_labels(loaded.label, fingerprint.label_mapping)


def saved_prediction(oof: Path, case_id: str, fingerprint: Any) -> np.ndarray:
    """The class map a rung saved for ``case_id`` in its ``oof`` folder.

    Raises
    ------
    AutomedError
        If the folder holds no mask of the case.
    """
    from automed.data.io import read_image, strip_suffix
    from automed.data.normalize import map_labels

    found = [p for p in oof.iterdir() if strip_suffix(p) == case_id]
    if not found:
        raise AutomedError(f"{oof}: no saved mask of {case_id}")
    return map_labels(read_image(found[0]).array.astype(np.int64), fingerprint.label_mapping)
