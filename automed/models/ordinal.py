"""Ordinal classification for graded classes (lesion grades, retinopathy stages).

Two ordinal forms, one per rung family, each searched against plain multi-class:

* :class:`CumulativeOrdinal` for the tabular models: Frank and Hall's decomposition
  ("A simple approach to ordinal classification", ECML 2001) into binary models of
  ``P(grade > k)``, which keeps any scikit-learn or LightGBM classifier. Written here because
  neither scikit-learn nor LightGBM has an ordinal classifier, and ``mord`` (the one ordinal
  package) is unmaintained and fits linear models only.
* :func:`squared_emd_loss` for the networks: the squared earth mover's distance between the
  predicted and the true cumulative distributions (Hou et al., 2016), which penalises a
  prediction by how many grades it is off while keeping the softmax head. Neither torch nor
  MONAI has it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone

__all__ = ["CumulativeOrdinal", "squared_emd_loss"]


class CumulativeOrdinal(ClassifierMixin, BaseEstimator):
    """Ordered classes as ``K - 1`` binary problems ``y > k``, recombined into class probabilities.

    Parameters
    ----------
    estimator : scikit-learn classifier
        Cloned once per cut point.

    Notes
    -----
    ``P(y = k) = P(y > k - 1) - P(y > k)``; the binary estimates are first made non-increasing
    in ``k`` (a running minimum), so no probability is negative.
    """

    def __init__(self, estimator: Any) -> None:
        self.estimator = estimator

    def fit(self, X: np.ndarray, y: np.ndarray) -> CumulativeOrdinal:
        self.classes_ = np.unique(y)
        self.estimators_ = [clone(self.estimator).fit(X, (y > k).astype(int)) for k in self.classes_[:-1]]
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        above = np.column_stack([e.predict_proba(X)[:, list(e.classes_).index(1)] for e in self.estimators_])
        above = np.minimum.accumulate(above, axis=1)
        cumulative = np.hstack([np.ones((len(X), 1)), above, np.zeros((len(X), 1))])
        return cumulative[:, :-1] - cumulative[:, 1:]

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


def squared_emd_loss(logits: Any, target: Any) -> Any:
    """Mean over the batch of ``sum_k (CDF_pred(k) - CDF_true(k))^2`` for ordered classes.

    Parameters
    ----------
    logits : tensor, shape (N, K)
    target : tensor of class indices, shape (N,)
    """
    import torch

    cdf_pred = torch.softmax(logits, dim=1).cumsum(dim=1)
    cdf_true = torch.nn.functional.one_hot(target, logits.shape[1]).to(logits.dtype).cumsum(dim=1)
    return ((cdf_pred - cdf_true) ** 2).sum(dim=1).mean()
