"""The quality record of a classification run, and the quality of one classified image.

At the end of a fit: the descriptors of the development images (the training images' reference) and, for every
finished rung, the calibration of its quality score on its validation cases (out-of-fold, or the held-out
validation split), never the test cases: how far each image is from the others, how small the margin between the
two most probable classes is, and for an ensemble how far its members disagree. A bad validation case is one the
rung classified wrongly.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from automed.quality.calibration import Calibration, calibrate
from automed.quality.descriptors import descriptor_names, image_descriptors
from automed.quality.record import QualityRecord
from automed.quality.reference import MAX_REFERENCE_CASES, ImageReference
from automed.results import RungResult

__all__ = ["MemberProbabilities", "classification_values", "write_classification_quality"]

log = logging.getLogger("automed")


@runtime_checkable
class MemberProbabilities(Protocol):
    """A fitted classification rung that combines members: their probabilities, one by one."""

    def member_probabilities(self, dataset: Any, cases: list[Any], n_jobs: int = 1,
                             progress: bool = False) -> np.ndarray:
        """Each member's class probabilities ``(n_members, n_cases, n_classes)``."""


def classification_values(proba: np.ndarray, members: np.ndarray | None = None) -> list[dict[str, float]]:
    """Each case's quality components from its class probabilities ``proba`` ``(n_cases, n_classes)``:
    ``uncertainty`` (1 - the margin between the two most probable classes) and, given the ``members``'
    probabilities ``(n_members, n_cases, n_classes)``, their ``disagreement``."""
    ordered = np.sort(proba, axis=1)
    uncertainty = 1.0 - (ordered[:, -1] - ordered[:, -2])
    spread = None if members is None else members.std(axis=0).mean(axis=1)
    return [{"uncertainty": float(u), **({} if spread is None else {"disagreement": float(spread[i])})}
            for i, u in enumerate(uncertainty)]


def descriptors_of(dataset: Any, cases: list[Any]) -> np.ndarray:
    """The image descriptors of ``cases`` (one row each)."""
    from automed.data.classification import load_image

    return np.stack([image_descriptors(load_image(dataset, case)) for case in cases])


def write_classification_quality(folder: Path, recipe: Any, opened: Any, done: tuple[RungResult, ...]) -> None:
    """Write the run's ``quality.json`` into ``folder`` (see the module docstring)."""
    from automed.metrics import decide_classes

    started = time.monotonic()
    dataset = opened.dataset
    dev = set(opened.splits["dev"])
    cases = [c for c in dataset.cases if c.case_id in dev]
    if len(cases) < 3:
        log.info("quality: %d development case(s), too few for a reference; no quality record", len(cases))
        return
    rng = np.random.default_rng(recipe.random_state)
    if len(cases) > MAX_REFERENCE_CASES:
        cases = [cases[i] for i in np.sort(rng.choice(len(cases), MAX_REFERENCE_CASES, replace=False))]
    from automed.data.classification import load_image

    rows = descriptors_of(dataset, cases)
    image = load_image(dataset, cases[0])
    reference = ImageReference.fit(rows, descriptor_names(image.shape[0], image.ndim - 1), recipe.random_state)
    distance = dict(zip([c.case_id for c in cases], reference.case_distances(rows)))
    classes = list(dataset.classes)
    by_name = {r.name: r for r in done}
    calibrations: dict[str, Calibration] = {}
    notes = []
    for result in done:
        records = {c["case_id"]: c for c in result.validation_per_case if c["case_id"] in distance}
        if len(records) < 3:
            notes.append(f"{result.name}: fewer than three validation cases with out-of-sample probabilities; its "
                         "predictions are flagged only when out of distribution")
            continue
        ids = list(records)
        proba = np.array([records[c]["proba"] for c in ids])
        members = _members_proba(result, by_name, ids)
        values = classification_values(proba, members)
        components = {"distance": np.array([distance[c] for c in ids]),
                      **{k: np.array([v[k] for v in values]) for k in values[0]}}
        truth = np.array([classes.index(records[c]["label"]) for c in ids])
        wrong = decide_classes(proba, result.summary.get("threshold")) != truth
        calibrations[result.name] = calibrate(
            components, wrong, f"a wrong class ({int(wrong.sum())} of {len(ids)} validation cases)",
            recipe.random_state)
    QualityRecord("classification", reference, calibrations, {}, time.monotonic() - started, tuple(notes)).write(folder)
    log.info("quality: the training images' reference and %d rung calibration(s) in %.1fs", len(calibrations),
             time.monotonic() - started)


def _members_proba(result: RungResult, by_name: dict[str, RungResult], ids: list[str]) -> np.ndarray | None:
    """An ensemble's members' out-of-sample probabilities of ``ids`` ``(n_members, n_cases, n_classes)``; None for a
    rung that combines none, or where a member lacks a case."""
    members = result.details.get("members")
    if not members or any(m not in by_name for m in members):
        return None
    stacked = []
    for name in members:
        records = {c["case_id"]: c["proba"] for c in by_name[name].validation_per_case}
        if any(c not in records for c in ids):
            return None
        stacked.append([records[c] for c in ids])
    return np.array(stacked, dtype=np.float64)
