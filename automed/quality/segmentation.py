"""The quality record of a segmentation run, and the quality of one predicted case.

At the end of a fit: the descriptors of every validation case's image (the training images' reference), the
training labels' volumes and numbers of pieces per class, and for every finished rung the calibration of its
quality score on the validation cases: how far each image is from the others, how implausible the rung's
out-of-fold mask is (``rungs/<name>/oof/``), and where the rung kept a model per fold, how unsure the models that
did not train on the case are. A bad validation case is one of the worst tenth by Dice.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from automed.quality.calibration import Calibration, calibrate
from automed.quality.descriptors import descriptor_names, image_descriptors
from automed.quality.record import QualityRecord
from automed.quality.reference import ImageReference
from automed.results import RungResult

__all__ = ["BAD_FRACTION", "MAX_ENTROPY_CASES", "entropy_map", "segmentation_values", "write_segmentation_quality"]

log = logging.getLogger("automed")

BAD_FRACTION = 0.1
"""The worst tenth of the validation cases by Dice are the bad cases the review threshold is chosen to catch."""
MAX_ENTROPY_CASES = 100
"""Validation cases (seeded) on which a rung's held-out models are run to calibrate its entropy: each costs one
prediction per rung."""
STRUCTURE_PROBABILITY = 0.1
"""The entropy is averaged where the foreground's probability reaches this: where the model sees any structure."""


def segmentation_values(proba: np.ndarray, unsure: np.ndarray, pred: np.ndarray,
                        label_shapes: dict[str, dict[str, list[float]]]) -> dict[str, float]:
    """The quality components a segmentation rung's prediction gives: ``entropy``, the mean of the class
    probabilities' :func:`entropy_map` ``unsure`` where ``proba`` sees any structure, and ``structure``, how
    implausible the class map ``pred`` is against the training labels (see
    :data:`automed.quality.record.COMPONENT_NOTES`); and each class's ``volume_<k>`` in voxels of the working grid."""
    return {"entropy": _entropy(proba, unsure), **_structure(pred, label_shapes)}


def entropy_map(proba: np.ndarray) -> np.ndarray:
    """The per-voxel entropy of the class probabilities ``proba`` ``(n_classes, *spatial)``, divided by its largest
    possible value (0: sure, 1: every class equally likely)."""
    p = np.clip(proba, 1e-12, 1.0)
    return (-(p * np.log(p)).sum(axis=0) / np.log(proba.shape[0])).astype(np.float32)


def _entropy(proba: np.ndarray, unsure: np.ndarray | None = None) -> float:
    """The mean of :func:`entropy_map` (``unsure``, where already computed) where the foreground's probability
    reaches :data:`STRUCTURE_PROBABILITY` (0 where it never does)."""
    structure = 1.0 - proba[0] >= STRUCTURE_PROBABILITY
    if not structure.any():
        return 0.0
    return float((entropy_map(proba) if unsure is None else unsure)[structure].mean())


def _structure(pred: np.ndarray, label_shapes: dict[str, dict[str, list[float]]]) -> dict[str, float]:
    """``structure`` (the largest robust z of a class's log volume or pieces) and ``volume_<k>`` per class."""
    from automed.structures import structure_shape

    values, worst = {}, 0.0
    for key, stats in label_shapes.items():
        shape = structure_shape(pred == int(key))
        values[f"volume_{key}"] = float(shape["volume"])
        for figure, value in (("volume", np.log1p(shape["volume"])), ("pieces", float(shape["pieces"]))):
            centre, scale = stats[figure]
            if scale > 0:
                worst = max(worst, abs(value - centre) / scale)
    return {"structure": float(worst), **values}


def write_segmentation_quality(folder: Path, recipe: Any, opened: Any, done: tuple[RungResult, ...]) -> None:
    """Write the run's ``quality.json`` into ``folder`` (see the module docstring); nothing with fewer than three
    validation cases."""
    from automed.data.normalize import normalize
    from automed.data.oof import image_and_truth, saved_prediction
    from automed.quality.record import QUALITY_JSON
    from automed.robust import robust_centre_scale
    from automed.statistics import case_scores
    from automed.structures import MIN_SCALE, structure_shape

    started = time.monotonic()
    fingerprint = opened.fingerprint
    fold_of = {c: i for i, fold in enumerate(opened.splits["folds"]) for c in fold["val"]}
    cases = [c for c in opened.dataset.cases if c.case_id in fold_of]
    if len(cases) < 3:
        log.info("quality: %d validation case(s), too few to calibrate; no %s", len(cases), QUALITY_JSON)
        return
    records = {r["case_id"]: r for r in fingerprint.cases}
    classes = [k for k in sorted(fingerprint.classes) if k != 0]
    models = _held_out_models(folder, done)
    rng = np.random.default_rng(recipe.random_state)
    folds_kept = max([m.held_out_folds() for m in models.values()], default=0)
    eligible = [c.case_id for c in cases if fold_of[c.case_id] < folds_kept]  # a model that did not train on it
    entropy_cases = {eligible[i] for i in rng.permutation(len(eligible))[:MAX_ENTROPY_CASES]}
    descriptors, shapes, entropy = [], {k: [] for k in classes}, {name: {} for name in models}
    for case in cases:
        image, truth = image_and_truth(case, fingerprint)
        image = normalize(image, fingerprint)
        record = records.get(case.case_id, {})
        descriptors.append(image_descriptors(image, record.get("native_spacing", record.get("spacing"))))
        for k in classes:
            shapes[k].append(structure_shape(truth == k))
        for name, model in models.items():
            fold = fold_of[case.case_id]
            if case.case_id in entropy_cases and fold < model.held_out_folds():
                entropy[name][case.case_id] = _entropy(model.predict_proba(image, fold=fold))
    label_shapes = {str(k): {"volume": list(robust_centre_scale(np.log1p([s["volume"] for s in shapes[k]]),
                                                                MIN_SCALE["volume"])),
                             "pieces": list(robust_centre_scale(np.array([s["pieces"] for s in shapes[k]], float),
                                                                MIN_SCALE["pieces"]))} for k in classes}
    rows = np.stack(descriptors)
    reference = ImageReference.fit(rows, descriptor_names(fingerprint.n_channels, fingerprint.dims),
                                   recipe.random_state)
    distance = dict(zip([c.case_id for c in cases], reference.case_distances(rows)))
    scored = [k for k in sorted(fingerprint.classes) if recipe.include_background or k != 0]
    calibrations: dict[str, Calibration] = {}
    notes = []
    for result in done:
        oof = folder / "rungs" / result.name / "oof"
        ids = [c["case_id"] for c in result.per_case if c["case_id"] in distance]
        if not oof.is_dir() or len(ids) < 3:
            notes.append(f"{result.name}: no out-of-fold masks of three or more validation cases; its predictions "
                         "are flagged only when out of distribution")
            continue
        dice = case_scores([c for c in result.per_case if c["case_id"] in distance], scored)
        components = {"distance": np.array([distance[c] for c in ids]),
                      "structure": np.array([_structure(saved_prediction(oof, c, fingerprint), label_shapes)
                                             ["structure"] for c in ids])}
        if entropy.get(result.name):
            components["entropy"] = np.array([entropy[result.name].get(c, math.nan) for c in ids])
        else:
            notes.append(f"{result.name}: kept no model per fold, so its entropy on the validation cases would be "
                         "in-sample; its score leaves the entropy out (the column is still written)")
        values = np.array([dice[c] for c in ids])
        cut = float(np.percentile(values, 100 * BAD_FRACTION))
        calibrations[result.name] = calibrate(
            components, values <= cut,
            f"Dice at or below {cut:.3f} (the worst {100 * BAD_FRACTION:.0f} % of {len(ids)} validation cases)",
            recipe.random_state)
    QualityRecord("segmentation", reference, calibrations, label_shapes, time.monotonic() - started,
                  tuple(notes)).write(folder)
    log.info("quality: the training images' reference and %d rung calibration(s) in %.1fs", len(calibrations),
             time.monotonic() - started)


def _held_out_models(folder: Path, done: tuple[RungResult, ...]) -> dict[str, Any]:
    """The finished rungs that kept a model per fold, loaded."""
    from automed.rungs import rung_class
    from automed.rungs.fitted import load_fitted
    from automed.tasks.segmentation import HeldOutFolds

    models = {}
    for result in done:
        if issubclass(rung_class(result.name, "segmentation"), HeldOutFolds):
            model = load_fitted(result.name, "segmentation", folder / "rungs" / result.name)
            if model.held_out_folds() > 0:
                models[result.name] = model
    return models
