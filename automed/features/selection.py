"""Drop constant and near-duplicate feature columns (decided on training data only)."""

from __future__ import annotations

import numpy as np

__all__ = ["redundant_free_columns"]


def redundant_free_columns(X: np.ndarray, max_abs_correlation: float = 0.98) -> np.ndarray:
    """Indices of the columns to keep: non-constant, and not nearly collinear with an earlier kept one.

    Parameters
    ----------
    X : ndarray, shape (n_samples, n_features)
    max_abs_correlation : float
        A column whose absolute Pearson correlation with an already kept column
        exceeds this is dropped.
    """
    from sklearn.feature_selection import VarianceThreshold

    finite = np.isfinite(X).all(axis=0)
    varying = VarianceThreshold(0.0).fit(np.nan_to_num(X)).get_support()
    candidates = np.flatnonzero(finite & varying)
    if candidates.size <= 1:
        return candidates
    corr = np.abs(np.corrcoef(X[:, candidates], rowvar=False))
    keep: list[int] = []
    for j in range(candidates.size):
        if not keep or corr[j, keep].max() <= max_abs_correlation:
            keep.append(j)
    return candidates[keep]
