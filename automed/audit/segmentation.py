"""Audit a segmentation run: cases whose label the rungs' out-of-fold predictions contradict more than the case's
difficulty explains, label components every rung misses, structures every rung predicts that the label lacks,
and labels whose volume, number of pieces or position is implausible for the dataset.

Every figure comes from the masks the rungs saved for cases they did not train on (``rungs/<name>/oof/``);
nothing is refitted. A case's difficulty is how well the rungs agree with one another on it: a case the rungs
segment alike and the label contradicts is suspect, one they disagree on is merely hard. With a single rung,
the case's Dice is judged against that rung's Dice on the other cases.
"""

from __future__ import annotations

from collections import defaultdict
from itertools import combinations
from typing import Any

import numpy as np

from automed.audit.inputs import AuditInputs
from automed.audit.records import SUSPECT_Z, Audit, SuspectCase
from automed.audit.rescore import excluding_top, without_each
from automed.robust import robust_z
from automed.structures import MIN_SCALE, structure_shape

__all__ = ["COMPONENT_FRACTION", "audit_segmentation"]

COMPONENT_FRACTION = 0.25
"""A missed or extra component counts when it holds at least this fraction of the class's median volume."""
MIN_RUNGS_FOR_COMPONENTS = 2
"""Rungs that must have predicted a case for its missed and extra components to count (with one, the classical
rung's spurious structures on BU-BIL's cells flagged 9 of 35 labels)."""
SHOWN = {"volume": "volume in voxels", "pieces": "number of pieces"}
NOTES = {
    "label_disagreement": "1 - mean Dice between the label and the rungs' out-of-fold masks (mean over classes)",
    "rung_agreement": "mean Dice between the rungs' masks (how alike the rungs segment the case; its difficulty)",
    "disagreement_z": "robust z-score over cases of the label's disagreement beyond the rungs' own disagreement",
    "volume_z": "the largest robust z-score (either sign) of a class's log volume (voxels of the working grid)",
    "pieces_z": "the largest robust z-score of a class's number of pieces (connected components)",
    "position_z": "the largest robust z-score (either sign) of a class's centroid, per axis, as a fraction of the image",
    "missed_fraction": "labelled voxels in components no rung touches, over the class's median volume (largest class)",
    "extra_fraction": "voxels every rung predicts in components the label lacks, over the class's median volume",
    "inter_rater_dice": "several raters: the mean Dice between the case's pairs of raters",
    "rater_disagreement_z": "several raters: how far below the other cases' the raters' agreement lies (robust SDs)",
}


def audit_segmentation(inputs: AuditInputs) -> Audit:
    """Rank the run's labelled cases by how suspect their labels look (see the module docstring)."""
    from automed.data.oof import image_and_truth, saved_prediction

    fingerprint = inputs.run.opened.fingerprint
    classes = [k for k in sorted(fingerprint.classes) if k != 0]
    saved = [r for r in inputs.trained if (inputs.folder / "rungs" / r.name / "oof").is_dir()]
    folds = {c: i for i, fold in enumerate(inputs.run.opened.splits["folds"]) for c in fold["val"]}
    cases = {c.case_id: c for c in inputs.run.opened.dataset.cases if c.case_id in folds}
    shapes: dict[str, dict[int, dict[str, Any]]] = {}
    masks_of: dict[str, tuple[np.ndarray, list[np.ndarray]]] = {}
    for case_id, case in cases.items():
        _, truth = image_and_truth(case, fingerprint)
        preds = []
        for result in saved:
            oof = inputs.folder / "rungs" / result.name / "oof"
            if case_id in {c["case_id"] for c in result.per_case}:
                preds.append(saved_prediction(oof, case_id, fingerprint))
        shapes[case_id] = {k: structure_shape(truth == k) for k in classes}
        masks_of[case_id] = (truth, preds)
    median_volume = {k: float(np.median([shapes[c][k]["volume"] for c in cases])) or 1.0 for k in classes}
    evidence: dict[str, dict[str, float | None]] = defaultdict(dict)
    reasons: dict[str, list[str]] = defaultdict(list)
    gap = {}
    for case_id, (truth, preds) in masks_of.items():
        gap[case_id] = _agreement(truth, preds, classes, evidence[case_id])
        _components(truth, preds, classes, median_volume, fingerprint.classes, evidence[case_id], reasons[case_id])
    ids = list(cases)
    _robust(ids, [gap[c] for c in ids], "disagreement_z", evidence, reasons,
            lambda c, z: f"the rungs agree with one another better than with its label (disagreement "
                         f"{evidence[c]['label_disagreement']:.2f}, {z:.1f} robust SDs above the other cases)")
    _per_class(ids, classes, shapes, "volume", np.log1p, "volume_z", fingerprint.classes, evidence, reasons, True)
    _per_class(ids, classes, shapes, "pieces", float, "pieces_z", fingerprint.classes, evidence, reasons, False)
    _position(ids, classes, shapes, fingerprint.classes, evidence, reasons)
    _raters(inputs, evidence, reasons)
    score = {c: max([v for k, v in evidence[c].items() if k.endswith("_z") and v is not None] or [0.0])
             for c in ids}
    ranked = sorted(ids, key=lambda c: (not reasons[c], -score[c], c))
    scored = [k for k in sorted(fingerprint.classes) if inputs.run.recipe.include_background or k != 0]
    metric, without, excluded = _rescored(inputs, scored, ranked, reasons)
    audited = tuple(SuspectCase(c, "train", float(score[c]), bool(reasons[c]), tuple(reasons[c]), dict(evidence[c]),
                                *without.get(c, (None, None))) for c in ranked)
    names = ", ".join(r.name for r in saved) or "none"
    sentence = (f"Label issues from the out-of-fold masks of {len(saved)} rung(s) ({names}) and the dataset's shape "
                f"statistics. Ranked: flagged cases first, then by their largest robust z-score.")
    left_out = ["cleanlab's segmentation label quality: the rungs keep masks, not per-voxel probabilities"]
    if len(saved) < 2:
        left_out.append("the rungs' agreement with one another (a case's difficulty): one rung saved masks")
    if not any(len(masks_of[c][1]) >= MIN_RUNGS_FOR_COMPONENTS for c in ids):
        left_out.append(f"components missed or added by every rung: no case was predicted by "
                        f"{MIN_RUNGS_FOR_COMPONENTS} or more rungs")
    return Audit("segmentation", sentence, audited, NOTES, metric, excluded, left_out)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2 * np.logical_and(a, b).sum() / total)


def _agreement(truth: np.ndarray, preds: list[np.ndarray], classes: list[int], evidence: dict[str, Any]) -> float:
    """Record the label's disagreement with the rungs and the rungs' agreement; return the label's disagreement
    beyond the rungs' own (NaN without a prediction)."""
    if not preds:
        return float("nan")
    label = 1 - np.mean([np.mean([_dice(p == k, truth == k) for k in classes]) for p in preds])
    evidence["label_disagreement"] = float(label)
    if len(preds) < 2:
        return float(label)
    agree = np.mean([np.mean([_dice(a == k, b == k) for k in classes]) for a, b in combinations(preds, 2)])
    evidence["rung_agreement"] = float(agree)
    return float(label - (1 - agree))


def _components(truth: np.ndarray, preds: list[np.ndarray], classes: list[int], median_volume: dict[int, float],
                names: dict[int, str], evidence: dict[str, Any], reasons: list[str]) -> None:
    """Label components no rung touches and components every rung predicts that the label lacks, where two or
    more rungs predicted the case (one rung's misses and spurious structures say more about it than the label)."""
    from scipy import ndimage

    if len(preds) < MIN_RUNGS_FOR_COMPONENTS:
        return
    missed_most, extra_most = 0.0, 0.0
    for k in classes:
        label, n = ndimage.label(truth == k)
        predicted_any = np.logical_or.reduce([p == k for p in preds])
        sizes = ndimage.sum_labels(np.ones_like(label), label, np.arange(1, n + 1)) if n else np.zeros(0)
        touched = ndimage.maximum(predicted_any, label, np.arange(1, n + 1)) if n else np.zeros(0)
        missed = float(sizes[~np.asarray(touched, bool)].sum()) / median_volume[k]
        everyone, m = ndimage.label(np.logical_and.reduce([p == k for p in preds]))
        overlap = ndimage.maximum(truth == k, everyone, np.arange(1, m + 1)) if m else np.zeros(0)
        extra_sizes = ndimage.sum_labels(np.ones_like(everyone), everyone, np.arange(1, m + 1)) if m else np.zeros(0)
        extra = float(extra_sizes[~np.asarray(overlap, bool)].sum()) / median_volume[k]
        if missed >= COMPONENT_FRACTION:
            reasons.append(f"{names[k]}: labelled components that no rung predicts ({missed:.0%} of the class's "
                           "median volume)")
        if extra >= COMPONENT_FRACTION:
            reasons.append(f"{names[k]}: every rung predicts a structure the label lacks ({extra:.0%} of the "
                           "class's median volume)")
        missed_most, extra_most = max(missed_most, missed), max(extra_most, extra)
    evidence["missed_fraction"], evidence["extra_fraction"] = missed_most, extra_most


def _robust(ids: list[str], values: list[float], name: str, evidence: dict[str, dict[str, Any]],
            reasons: dict[str, list[str]], sentence: Any) -> None:
    z = robust_z(np.array(values, dtype=float))
    for case, value in zip(ids, z):
        if np.isfinite(value):
            evidence[case][name] = float(value)
            if value > SUSPECT_Z:
                reasons[case].append(sentence(case, float(value)))


def _per_class(ids: list[str], classes: list[int], shapes: dict[str, Any], key: str, figure: Any, name: str,
               names: dict[int, str], evidence: dict[str, dict[str, Any]], reasons: dict[str, list[str]],
               two_sided: bool) -> None:
    """The largest robust z-score of ``figure(shape[key])`` over the classes, with a reason per class past the
    threshold (``two_sided``: too small counts as well as too large)."""
    for k in classes:
        z = robust_z(np.array([figure(shapes[c][k][key]) for c in ids], dtype=float), MIN_SCALE[key])
        for case, value in zip(ids, z):
            size = abs(value) if two_sided else value
            evidence[case][name] = max(evidence[case].get(name, 0.0), float(size))
            if size > SUSPECT_Z:
                side = "above" if value > 0 else "below"
                reasons[case].append(f"{names[k]}: an implausible {SHOWN[key]} ({shapes[case][k][key]}; {size:.1f} robust "
                                     f"SDs {side} the other cases)")


def _position(ids: list[str], classes: list[int], shapes: dict[str, Any], names: dict[int, str],
              evidence: dict[str, dict[str, Any]], reasons: dict[str, list[str]]) -> None:
    """The largest robust z-score of a class's centroid along any axis."""
    for k in classes:
        centroids = np.stack([shapes[c][k]["centroid"] for c in ids])
        extent = np.median(np.stack([shapes[c][k]["extent"] for c in ids]), axis=0)
        z = np.abs(np.stack([robust_z(centroids[:, axis], max(MIN_SCALE["position"], 1 / extent[axis]))
                             for axis in range(centroids.shape[1])], axis=1))
        for case, row in zip(ids, z):
            if np.isfinite(row).any():
                value = float(np.nanmax(row))
                evidence[case]["position_z"] = max(evidence[case].get("position_z", 0.0), value)
                if value > SUSPECT_Z:
                    reasons[case].append(f"{names[k]}: lies where this class does not ({value:.1f} robust SDs "
                                         f"from its usual place along axis {int(np.nanargmax(row))})")


def _raters(inputs: AuditInputs, evidence: dict[str, dict[str, Any]], reasons: dict[str, list[str]]) -> None:
    """Where cases have several raters (``raters.json``): their agreement, and a reason where it is far below the
    other cases' (those labels are the least trustworthy)."""
    import json

    from automed.ladder.raters import RATERS_JSON

    path = inputs.folder / RATERS_JSON
    if not path.is_file():
        return
    record = json.loads(path.read_text())
    for case in record["per_case"]:
        evidence[case["case_id"]]["inter_rater_dice"] = case["inter_rater_dice"]
    for case in record["disagreeing_cases"]:
        evidence[case["case_id"]]["rater_disagreement_z"] = case["z"]
        reasons[case["case_id"]].append(f"its raters disagree (inter-rater Dice {case['inter_rater_dice']:.3f}, "
                                        f"{case['z']:.1f} robust SDs below the other cases')")


def _rescored(inputs: AuditInputs, classes: list[int], ranked: list[str], reasons: dict[str, list[str]]
              ) -> tuple[dict[str, Any] | None, dict[str, tuple[float, str]], list[dict[str, Any]]]:
    """The reported rung's Dice on its comparison cases without each case, and without the top k."""
    from automed.statistics import case_scores

    best = inputs.best
    if best is None or best.comparison is None:
        return None, {}, []
    scores = case_scores(best.per_case, classes)
    scope = [c for c in best.comparison["case_ids"] if c in scores]

    def metric_of(ids):
        return float(np.mean([scores[c] for c in ids]))

    name = f"{best.name} Dice on its {best.comparison['cases']}"
    excluded = excluding_top(scope, metric_of, ranked, sum(1 for c in scope if reasons[c]))
    without = {c: (v, name) for c, v in without_each(scope, metric_of).items()}
    return {"scope": name, "mean": excluded[0]["mean"] if excluded else None, "n": len(scope)}, without, excluded
