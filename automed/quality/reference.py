"""How far an image is from the training images: the distance of its descriptors (:mod:`automed.quality.descriptors`)
to its nearest training cases, read as a percentile of the training cases' own distances to one another."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Sequence

import numpy as np

from automed.robust import robust_centre_scale

__all__ = ["ImageReference", "MAX_REFERENCE_CASES"]

NEIGHBOURS = 5
MAX_REFERENCE_CASES = 5000
"""More training cases are subsampled (seeded) to this many: the percentiles hardly move, and the record stays small."""
SAME_IMAGE = 1e-6
"""Descriptors this close (robust SDs, root mean square) are one image's."""
RELATIVE_FLOOR = 0.05
"""A descriptor's robust scale is at least 5 % of its typical magnitude (and 0.05): training cases that agree by
chance on a value (one spacing for all) must not make a small difference look far."""


@dataclass(frozen=True)
class ImageReference:
    """The training cases' descriptors, standardised, and their leave-one-out distances.

    Attributes
    ----------
    names : tuple of str
        The descriptors' names.
    centre, scale : ndarray
        Each descriptor's median and robust standard deviation over the training cases.
    rows : ndarray
        The training cases' standardised descriptors ``(n, d)``.
    calibration : ndarray
        Each training case's distance to the others (sorted): the yardstick of :meth:`percentile`.
    """

    names: tuple[str, ...]
    centre: np.ndarray
    scale: np.ndarray
    rows: np.ndarray
    calibration: np.ndarray

    @classmethod
    def fit(cls, descriptors: np.ndarray, names: Sequence[str], random_state: int = 0) -> ImageReference:
        """The reference of the training cases' ``descriptors`` ``(n, d)`` (at least two cases)."""
        descriptors = np.asarray(descriptors, dtype=np.float64)
        if len(descriptors) > MAX_REFERENCE_CASES:
            keep = np.random.default_rng(random_state).choice(len(descriptors), MAX_REFERENCE_CASES, replace=False)
            descriptors = descriptors[np.sort(keep)]
        centre, scale = np.zeros(descriptors.shape[1]), np.ones(descriptors.shape[1])
        for j, column in enumerate(descriptors.T):
            c, s = robust_centre_scale(column)
            centre[j], scale[j] = c, max(s, RELATIVE_FLOOR * max(abs(c), 1.0))
        reference = cls(tuple(names), centre, scale, (descriptors - centre) / scale, np.zeros(0))
        return cls(reference.names, centre, scale, reference.rows, np.sort(reference.case_distances(descriptors)))

    def standardise(self, descriptors: np.ndarray) -> np.ndarray:
        """``descriptors`` in robust standard deviations from the training cases' medians."""
        return (np.asarray(descriptors, dtype=np.float64) - self.centre) / self.scale

    def distance(self, descriptors: np.ndarray) -> float:
        """The root-mean-square standardised distance of one image's ``descriptors`` to its nearest training cases
        (the mean over the five nearest, or fewer with fewer cases)."""
        return float(self._neighbours(self.standardise(descriptors)[None], 0)[0].mean())

    def case_distances(self, descriptors: np.ndarray) -> np.ndarray:
        """:meth:`distance` of each training case's ``descriptors`` ``(n, d)`` to the other training cases (a
        reference row equal to the case, itself, is left out; with none, the furthest neighbour is)."""
        found = self._neighbours(self.standardise(descriptors), 1)
        # scikit-learn's Euclidean distances (|a|^2 + |b|^2 - 2ab) leave a point about 1e-8 from itself, not 0
        itself = found[:, 0] <= SAME_IMAGE
        return np.where(itself, found[:, 1:].mean(axis=1), found[:, :-1].mean(axis=1))

    def percentile(self, distance: float) -> float:
        """The percentage of training cases nearer to the other training cases than ``distance``."""
        return float(100.0 * np.searchsorted(self.calibration, distance, side="left") / max(len(self.calibration), 1))

    def outstanding(self, descriptors: np.ndarray, n: int = 2) -> list[tuple[str, float]]:
        """The ``n`` descriptors furthest from the training cases' medians, with their robust z-scores."""
        z = self.standardise(descriptors)
        order = np.argsort(-np.abs(z))[:n]
        return [(self.names[j], float(z[j])) for j in order]

    @cached_property
    def _index(self) -> Any:
        """The rows' nearest-neighbour index, built once (every predicted case asks it)."""
        from sklearn.neighbors import NearestNeighbors

        return NearestNeighbors().fit(self.rows)

    def _neighbours(self, points: np.ndarray, extra: int) -> np.ndarray:
        """Each point's distances to its nearest reference rows (the five nearest and ``extra`` more, or all rows
        when fewer), scaled to root mean square per descriptor."""
        found, _ = self._index.kneighbors(points, n_neighbors=min(NEIGHBOURS + extra, len(self.rows)))
        return found / np.sqrt(self.rows.shape[1])

    def to_dict(self) -> dict[str, Any]:
        return {"names": list(self.names), "centre": self.centre.tolist(), "scale": self.scale.tolist(),
                "rows": np.round(self.rows, 5).tolist(), "calibration": self.calibration.tolist()}

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> ImageReference:
        rows = np.asarray(record["rows"], dtype=np.float64).reshape(-1, len(record["names"]))
        return cls(tuple(record["names"]), np.asarray(record["centre"]), np.asarray(record["scale"]), rows,
                   np.asarray(record["calibration"]))
