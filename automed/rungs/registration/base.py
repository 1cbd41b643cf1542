"""What every registration rung shares: the fitted model's one call, the grid volumes of a fit, and the
evaluation of a rung on the evaluation pairs (each pair registered, timed and scored the same way)."""

from __future__ import annotations

import logging
import time
from abc import abstractmethod
from functools import lru_cache
from typing import Any, Protocol, runtime_checkable

import numpy as np

from automed.rungs.base import FitContext, Rung

__all__ = ["GridVolumes", "RegistrationModel", "RegistrationRung", "TuningPairs", "evaluate_pairs", "tuning_pairs"]

log = logging.getLogger("automed")


@runtime_checkable
class RegistrationModel(Protocol):
    """What the registration predictor calls on a fitted rung: the displacement (grid voxels, ``(dims, *grid)``)
    that registers ``moving`` onto ``fixed`` (both ``(channels, *grid)`` in [0, 1])."""

    def register(self, fixed: np.ndarray, moving: np.ndarray) -> np.ndarray: ...


class GridVolumes:
    """The fit's volumes on the grid, read once each (a pair's images recur across pairs)."""

    def __init__(self, dataset: Any, fingerprint: dict[str, Any]) -> None:
        from automed.data.registration import load_on_grid

        self._load = lru_cache(maxsize=None)(lambda case_id: load_on_grid(dataset.volumes[case_id], fingerprint))

    def __getitem__(self, case_id: str) -> Any:
        return self._load(case_id)


class RegistrationRung(Rung):
    """A registration rung: fits (searches, trains) on training volumes only, then registers the evaluation
    pairs. Subclasses implement :meth:`register` once fitted."""

    tasks = ("registration",)

    @abstractmethod
    def register(self, fixed: np.ndarray, moving: np.ndarray) -> np.ndarray:
        """The displacement registering ``moving`` onto ``fixed`` (see :class:`RegistrationModel`)."""


def evaluate_pairs(rung: RegistrationRung, context: FitContext, volumes: GridVolumes) -> list[dict[str, Any]]:
    """Register every evaluation pair with the fitted ``rung``, one after the other (seconds per pair are
    timed alone), and score it (:func:`automed.registration.scores.score_pair`)."""
    from automed.registration.scores import score_pair

    fingerprint = context.fingerprint
    records = []
    for pair in context.dataset.evaluation:
        fixed, moving = volumes[pair.fixed], volumes[pair.moving]
        started = time.perf_counter()
        displacement = rung.register(fixed.image, moving.image)
        seconds = time.perf_counter() - started
        records.append(score_pair(pair.case_id, displacement, fixed, moving, fingerprint["labels"],
                                  tuple(fingerprint["spacing"]), seconds))
    return records


def tuning_pairs(context: FitContext, n_pairs: int) -> list[tuple[str, str]]:
    """``n_pairs`` (fixed, moving) pairs of training volumes, seeded, for a search: never an evaluation volume
    (with an atlas, the atlas onto training subjects)."""
    training = list(context.dataset.training)
    if context.dataset.atlas is not None:
        return [(subject, context.dataset.atlas) for subject in training[:n_pairs]]
    if len(training) < 2:
        return []
    rng = np.random.default_rng(context.random_state)
    pairs: list[tuple[str, str]] = []
    while len(pairs) < min(n_pairs, len(training) * (len(training) - 1)):
        fixed, moving = rng.choice(len(training), 2, replace=False)
        pair = (training[fixed], training[moving])
        if pair not in pairs:
            pairs.append(pair)
    return pairs


class TuningPairs:
    """The pairs a search scores a trial on, and how: the mean warped-label Dice where every volume has a label,
    else the warped image's NCC minus 10 times its folding share (a field that folds to match is no match)."""

    def __init__(self, pairs: list[tuple[str, str]], volumes: GridVolumes, fingerprint: dict[str, Any]) -> None:
        self.pairs, self.volumes, self.fingerprint = pairs, volumes, fingerprint
        self.by_dice = bool(fingerprint["labels"]) and all(volumes[v].label is not None for p in pairs for v in p)

    @property
    def metric(self) -> str:
        return "dice" if self.by_dice else "ncc - 10 x folding"

    def score(self, rung: RegistrationRung) -> float:
        """The fitted ``rung``'s mean score over the pairs."""
        from automed.registration.scores import score_pair

        labels = self.fingerprint["labels"] if self.by_dice else []
        values = []
        for fixed_id, moving_id in self.pairs:
            fixed, moving = self.volumes[fixed_id], self.volumes[moving_id]
            record = score_pair("", rung.register(fixed.image, moving.image), fixed, moving, labels,
                                tuple(self.fingerprint["spacing"]), 0.0)
            values.append(np.mean([s["dice"] for s in record["scores"].values()]) if self.by_dice
                          else record["ncc"] - 10 * record["folding"])
        return float(np.mean(values))
