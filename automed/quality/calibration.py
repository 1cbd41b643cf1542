"""A rung's quality score and its review threshold, calibrated on the run's validation cases.

Each component of the score (how far the image is from the training images, how unsure the model is, how
implausible its prediction looks) is read as a percentile of its values on the validation cases, predicted by
models that did not train on them; the score is the mean of the components that tell the bad validation cases
apart there (AUC at least :data:`MIN_COMPONENT_AUC`; the best one where none does). On BreastMNIST the distance
alone ranked the classical rung's wrong test cases at AUC 0.39 and the margin at 0.79: a mean of both, 0.61. The
review threshold is the score that best separates the validation cases the rung got badly wrong from the others
(Youden's J), flagging at most a quarter of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

__all__ = ["Calibration", "MAX_FLAGGED", "MIN_COMPONENT_AUC", "auc_with_ci", "calibrate"]

MAX_FLAGGED = 0.25
"""The most validation cases the review threshold may flag: a reviewer's workload, not a second model."""
MIN_COMPONENT_AUC = 0.55
"""A component enters the score when it tells the bad validation cases apart at least this well on its own."""


@dataclass(frozen=True)
class Calibration:
    """How a rung's quality score is read.

    Attributes
    ----------
    components : tuple of str
        The score's components, in order (those chosen on the validation cases).
    validation : dict of str to ndarray
        Each component's values on the validation cases, sorted.
    threshold : float
        A score at or above it asks for review (infinite: none does, where no threshold flagged few enough of the
        validation cases; ``null`` in JSON).
    bad : str
        What counted as a badly wrong validation case.
    auc : dict
        The score's AUC for picking out the bad validation cases: ``mean``, ``ci_low``, ``ci_high``, ``n``,
        ``n_bad`` (``mean`` None with no bad case or no other).
    flagged : dict
        On the validation cases: ``n``, ``n_flagged``, ``bad_rate_flagged``, ``bad_rate_unflagged``.
    component_auc : dict of str to float or None
        Each candidate component's own AUC for a bad validation case (None where undefined).
    """

    components: tuple[str, ...]
    validation: dict[str, np.ndarray]
    threshold: float
    bad: str
    auc: dict[str, Any]
    flagged: dict[str, Any]
    component_auc: dict[str, float | None] = field(default_factory=dict)

    def percentiles(self, values: Mapping[str, float]) -> dict[str, float]:
        """Each component's value as the percentage of validation cases at or below it (NaN values left out)."""
        out = {}
        for name in self.components:
            value, seen = values.get(name, math.nan), self.validation[name]
            if value is not None and math.isfinite(value) and len(seen):
                out[name] = float(100.0 * np.searchsorted(seen, value, side="right") / len(seen))
        return out

    def score(self, values: Mapping[str, float]) -> float:
        """The quality score of a case's component ``values``: the mean of their percentiles (0-100, higher is
        less trustworthy); NaN when no component has a value."""
        found = list(self.percentiles(values).values())
        return float(np.mean(found)) if found else math.nan

    def to_dict(self) -> dict[str, Any]:
        return {"components": list(self.components), "validation": {k: v.tolist() for k, v in self.validation.items()},
                "threshold": self.threshold if math.isfinite(self.threshold) else None, "bad": self.bad, "auc": self.auc, "flagged": self.flagged,
                "component_auc": self.component_auc}

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Calibration:
        validation = {k: np.asarray(v, dtype=np.float64) for k, v in record["validation"].items()}
        threshold = math.inf if record["threshold"] is None else float(record["threshold"])  # JSON has no infinity
        return cls(tuple(record["components"]), validation, threshold, record["bad"], record["auc"],
                   record["flagged"], record.get("component_auc", {}))


def calibrate(components: Mapping[str, np.ndarray], bad: np.ndarray, bad_sentence: str,
              random_state: int = 0) -> Calibration:
    """The calibration of ``components`` (name -> one value per validation case) against ``bad`` (the validation
    cases the rung got badly wrong, described by ``bad_sentence``)."""
    bad = np.asarray(bad, dtype=bool)
    alone = {name: auc_with_ci(bad, np.asarray(v, dtype=np.float64), random_state, n_resamples=0)["mean"]
             for name, v in components.items()}
    telling = [n for n, a in alone.items() if a is not None and a >= MIN_COMPONENT_AUC]
    if not telling:  # none tells them apart (or no bad case to judge by): the best one, else all
        judged = [n for n in alone if alone[n] is not None]
        telling = [max(judged, key=lambda n: alone[n])] if judged else list(components)
    components = {n: components[n] for n in telling}
    validation = {name: np.sort(np.asarray(v, dtype=np.float64)[np.isfinite(v)]) for name, v in components.items()}
    empty = Calibration(tuple(components), validation, math.inf, bad_sentence, {}, {})
    scores = np.array([empty.score({n: float(v[i]) for n, v in components.items()}) for i in range(len(bad))])
    threshold = _threshold(scores, bad)
    flagged = scores >= threshold
    summary = {"n": int(len(bad)), "n_flagged": int(flagged.sum()),
               "bad_rate_flagged": float(bad[flagged].mean()) if flagged.any() else None,
               "bad_rate_unflagged": float(bad[~flagged].mean()) if (~flagged).any() else None}
    return Calibration(tuple(components), validation, float(threshold), bad_sentence,
                       auc_with_ci(bad, scores, random_state), summary, alone)


def _threshold(scores: np.ndarray, bad: np.ndarray) -> float:
    """The score maximising Youden's J (true minus false positive rate) among those flagging at most
    :data:`MAX_FLAGGED` of the cases; without bad cases or without good ones, the 90th percentile."""
    finite = np.isfinite(scores)
    scores, bad = scores[finite], bad[finite]
    if not len(scores):
        return math.inf
    if bad.all() or not bad.any():
        return float(np.percentile(scores, 90))
    best, best_j = math.inf, -math.inf
    for t in np.unique(scores):
        flagged = scores >= t
        if flagged.mean() > MAX_FLAGGED:
            continue
        j = flagged[bad].mean() - flagged[~bad].mean()
        if j > best_j:
            best, best_j = float(t), j
    return best


def auc_with_ci(bad: np.ndarray, scores: np.ndarray, random_state: int = 0, n_resamples: int = 1000) -> dict[str, Any]:
    """The AUC of ``scores`` for ``bad`` with a percentile-bootstrap 95 % CI over cases (resamples holding one kind of
    case are skipped, as :func:`automed.metrics.classification_summary` does; scipy's bootstrap cannot skip them)."""
    from sklearn.metrics import roc_auc_score

    finite = np.isfinite(scores)
    bad, scores = np.asarray(bad, bool)[finite], scores[finite]
    out: dict[str, Any] = {"mean": None, "ci_low": None, "ci_high": None, "n": int(len(bad)), "n_bad": int(bad.sum())}
    if bad.all() or not bad.any():
        return out
    rng = np.random.default_rng(random_state)
    draws: list[float] = []
    for _ in range(n_resamples):
        index = rng.integers(0, len(bad), len(bad))
        if 0 < bad[index].sum() < len(index):
            draws.append(roc_auc_score(bad[index], scores[index]))
    low, high = np.percentile(draws, [2.5, 97.5]) if len(draws) > 1 else (None, None)
    out.update(mean=float(roc_auc_score(bad, scores)), ci_low=None if low is None else float(low),
               ci_high=None if high is None else float(high))
    return out
