"""Audit a classification run: labels that its out-of-sample probabilities doubt (cleanlab), duplicate images
(above all across the train/validation/test splits: a leak) and images unlike the other images of their class (a
local outlier factor within the class, which judges each image against the density of its own neighbourhood).

Label issues need probabilities of a model that never trained on the case: the audit takes them from one rung,
the one whose out-of-sample probabilities cover the most development cases (out-of-fold, as the classical rung's
do), the better scoring one on a tie; test cases get that rung's held-out probabilities. Duplicates and outliers
are judged on small thumbnails of the images, standardised per image.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from typing import Any

import numpy as np

from automed.audit.inputs import AuditInputs
from automed.audit.records import SUSPECT_Z, Audit, SuspectCase
from automed.audit.rescore import excluding_top, without_each
from automed.robust import robust_z
from automed.results import RungResult

__all__ = ["NEAR_DUPLICATE", "audit_classification"]

NEAR_DUPLICATE = 0.13
"""Two images are near-duplicates when their thumbnails lie closer than this fraction of the median distance
between an image and its nearest neighbour (the rule of cleanlab's Datalab, whose own class needs the Hugging
Face ``datasets`` package, so the rule is applied here with scikit-learn's neighbours)."""
LABEL_FILTER = "low_normalized_margin"
"""cleanlab's rule: as many issues as its confident joint counts off the diagonal, the cases of lowest normalised
margin. Measured with the classical rung's probabilities on BreastMNIST (``benchmarks/label_audit.py``): 47 of
780 cases flagged on the clean file (68 with cleanlab's default, ``prune_by_noise_rate``), and 21 of 27 flipped
labels flagged among 83 with 5 % flipped (21 among 104 with the default)."""
THUMBNAIL = {2: 16, 3: 8}
"""Thumbnail side per number of spatial dimensions."""
MIN_OUTLIER_CASES = 12
"""Fewest images of a class for its outlier check."""
OUTLIER_COMPONENTS = 10
"""Principal components of the thumbnails the outlier check compares."""
OUTLIER_NEIGHBOURS = 20
"""Neighbours of the local outlier factor (scikit-learn's default)."""
MIN_OUTLIER_FACTOR = 1.5
"""An outlier's local outlier factor is also at least this: its neighbours' neighbourhoods are 1.5x denser than
its own (the factor is about 1 inside a cluster of any density)."""
NOTES = {
    "label_quality": "cleanlab's self-confidence: the audited rung's out-of-sample probability of the given label",
    "p_predicted": "the audited rung's out-of-sample probability of the class it predicts",
    "outlier_factor": "scikit-learn's local outlier factor of the image's standardised thumbnail among the images of "
                      "its class, on their 10 principal components (about 1: as dense a neighbourhood as its "
                      "neighbours')",
    "outlier_z": "robust z-score of the local outlier factor over the images of the class",
    "nearest_distance_ratio": "distance to the nearest other image over the dataset's median such distance "
                              f"(near-duplicate below {NEAR_DUPLICATE})",
}


def audit_classification(inputs: AuditInputs) -> Audit:
    """Rank every case of the run by how suspect its label or image looks (see the module docstring)."""
    dataset, splits = inputs.run.opened.dataset, inputs.run.opened.splits
    classes = list(dataset.classes)
    cases = {c.case_id: c for c in dataset.cases}
    split_of = _split_of(splits, cases)
    source = _source(inputs.trained, splits["dev"])
    proba = {c["case_id"]: np.asarray(c["proba"]) for c in (*source.validation_per_case, *source.per_case)}
    ids = [c for c in cases if c in proba]
    labels = np.array([classes.index(cases[c].label) for c in ids])
    probs = np.stack([proba[c] for c in ids])
    flagged, quality = _label_issues(labels, probs)
    reasons: dict[str, list[str]] = defaultdict(list)
    evidence: dict[str, dict[str, float | None]] = defaultdict(dict)
    for i, case in enumerate(ids):
        predicted = int(np.argmax(probs[i]))
        evidence[case].update(label_quality=float(quality[i]), p_predicted=float(probs[i, predicted]))
        if flagged[i]:
            reasons[case].append(f"cleanlab doubts its label {cases[case].label!r}: {source.name} gives it "
                                 f"{probs[i, labels[i]]:.2f} out of sample, and {probs[i, predicted]:.2f} to "
                                 f"{classes[predicted]!r}")
    left_out = _image_checks(inputs, cases, split_of, reasons, evidence)
    score = {c: 1.0 - evidence[c]["label_quality"] if "label_quality" in evidence[c] else 0.0 for c in cases}
    ranked = sorted(cases, key=lambda c: (not reasons[c], -score[c], c))
    metric, without, excluded = _rescored(inputs, source, cases, classes, ranked, reasons)
    audited = tuple(SuspectCase(c, split_of[c], float(score[c]), bool(reasons[c]), tuple(reasons[c]),
                                dict(evidence[c]), *without.get(c, (None, None))) for c in ranked)
    covered = len(set(splits["dev"]) & {c["case_id"] for c in source.validation_per_case})
    sentence = (f"Label issues from {source.name}'s out-of-sample probabilities: out-of-fold or held-out on "
                f"{covered} of {len(splits['dev'])} development cases and held-out on the test cases ({source.name} "
                "covers the most development cases out of sample). Ranked: flagged cases first, then by cleanlab's "
                "label quality.")
    if len(ids) < len(cases):
        left_out.append(f"{len(cases) - len(ids)} cases have no out-of-sample probability from {source.name}: "
                        "their labels were not checked")
    return Audit("classification", sentence, audited, NOTES, metric, excluded, left_out)


def _split_of(splits: dict[str, Any], cases: dict[str, Any]) -> dict[str, str]:
    """Each case's split: ``train``/``val``/``test`` where the data carry them, else ``dev`` or ``test``."""
    test = set(splits.get("test") or ())
    return {c: case.split or ("test" if c in test else "dev") for c, case in cases.items()}


def _source(trained: tuple[RungResult, ...], dev: list[str]) -> RungResult:
    """The rung whose out-of-sample probabilities cover the most development cases (the better one on a tie)."""
    dev_set = set(dev)

    def coverage(result: RungResult) -> tuple[int, float]:
        covered = len(dev_set & {c["case_id"] for c in result.validation_per_case})
        return covered, result.comparison_mean if result.comparison_mean is not None else -math.inf

    return max(trained, key=coverage)


def _label_issues(labels: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cleanlab's label issues (see :data:`LABEL_FILTER`) and self-confidence label quality."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    quality = get_label_quality_scores(labels, probs)
    if len(np.unique(labels)) < probs.shape[1]:  # a class without examples: confident learning is undefined
        return np.zeros(len(labels), bool), quality
    return find_label_issues(labels, probs, filter_by=LABEL_FILTER), quality


def _thumbnails(inputs: AuditInputs, cases: dict[str, Any]) -> tuple[np.ndarray, dict[str, str]]:
    """Standardised thumbnails (one row per case) and a digest of each image's exact pixels."""
    from skimage.transform import resize

    from automed.data.classification import load_image

    dataset = inputs.run.opened.dataset
    rows, digests = [], {}
    for case_id, case in cases.items():
        image = load_image(dataset, case)
        digests[case_id] = hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()
        side = THUMBNAIL[image.ndim - 1]
        small = resize(image, (image.shape[0], *[side] * (image.ndim - 1)), anti_aliasing=True).ravel()
        rows.append((small - small.mean()) / (small.std() or 1.0))
    return np.stack(rows), digests


def _image_checks(inputs: AuditInputs, cases: dict[str, Any], split_of: dict[str, str],
                  reasons: dict[str, list[str]], evidence: dict[str, dict[str, float | None]]) -> list[str]:
    """Add duplicate and outlier evidence; return the checks left out, with why."""
    from sklearn.neighbors import NearestNeighbors

    ids = list(cases)
    features, digests = _thumbnails(inputs, cases)
    by_digest: dict[str, list[str]] = defaultdict(list)
    for case in ids:
        by_digest[digests[case]].append(case)
    for group in by_digest.values():
        for case in group:
            for other in (o for o in group if o != case):
                if cases[other].label != cases[case].label:
                    reasons[case].append(f"the same pixels as {other} ({split_of[other]}), labelled "
                                         f"{cases[other].label!r} there")
                elif split_of[other] != split_of[case]:
                    reasons[case].append(f"the same pixels as {other} in {split_of[other]}: a leak between the splits")
    left_out = []
    if len(ids) < 3:
        return ["duplicates and outliers: fewer than 3 images"]
    distances, neighbours = NearestNeighbors(n_neighbors=2).fit(features).kneighbors(features)
    median = max(float(np.median(distances[:, 1])), 1e-12)
    for i, case in enumerate(ids):
        ratio = float(distances[i, 1] / median)
        evidence[case]["nearest_distance_ratio"] = ratio
        other = ids[neighbours[i, 1]]
        if ratio < NEAR_DUPLICATE and digests[other] != digests[case] and split_of[other] != split_of[case]:
            reasons[case].append(f"nearly the same image as {other} ({split_of[other]}): a possible leak between "
                                 "the splits")
    from sklearn.decomposition import PCA
    from sklearn.neighbors import LocalOutlierFactor

    for label in sorted({case.label for case in cases.values()}):
        members = [i for i, case in enumerate(ids) if cases[case].label == label]
        if len(members) < MIN_OUTLIER_CASES:
            left_out.append(f"outliers of class {label!r}: fewer than {MIN_OUTLIER_CASES} images")
            continue
        # the thumbnails' main components: in the full pixel space noise makes every distance alike
        reduced = PCA(n_components=min(OUTLIER_COMPONENTS, len(members)), random_state=0).fit_transform(
            features[members])
        factor = -LocalOutlierFactor(n_neighbors=min(OUTLIER_NEIGHBOURS, len(members) - 1)).fit(
            reduced).negative_outlier_factor_
        z = robust_z(factor)
        for i, f, zi in zip(members, factor, z):
            evidence[ids[i]]["outlier_factor"], evidence[ids[i]]["outlier_z"] = float(f), float(zi)
            if zi > SUSPECT_Z and f > MIN_OUTLIER_FACTOR:
                reasons[ids[i]].append(f"unlike the other images labelled {label!r} (local outlier factor {f:.1f}, "
                                       f"{zi:.1f} robust SDs above theirs)")
    return left_out


def _rescored(inputs: AuditInputs, source: RungResult, cases: dict[str, Any], classes: list[str],
              ranked: list[str], reasons: dict[str, list[str]]
              ) -> tuple[dict[str, Any] | None, dict[str, tuple[float, str]], list[dict[str, Any]]]:
    """The reported test metric without each test case (and without the top k), and the audited rung's
    out-of-fold metric without each development case."""
    from automed.metrics import classification_scores

    metric_name = inputs.run.recipe.metric

    def scorer(result: RungResult, records: list[dict[str, Any]]):
        by_id = {c["case_id"]: c for c in records}
        threshold = result.summary.get("threshold")

        def metric_of(ids):
            y = np.array([classes.index(by_id[c]["label"]) for c in ids])
            return classification_scores(y, np.array([by_id[c]["proba"] for c in ids]), threshold)[metric_name]
        return [c for c in by_id if c in cases], metric_of

    without: dict[str, tuple[float, str]] = {}
    metric, excluded = None, []
    if inputs.best is not None and inputs.best.per_case:
        scope, metric_of = scorer(inputs.best, inputs.best.per_case)
        scope_name = f"{inputs.best.name} test {metric_name}"
        without.update({c: (v, scope_name) for c, v in without_each(scope, metric_of).items()})
        n_suspect = sum(1 for c in scope if reasons[c])
        excluded = excluding_top(scope, metric_of, ranked, n_suspect)
        metric = {"scope": scope_name, "mean": excluded[0]["mean"], "n": len(scope)}
    dev_scope, dev_metric = scorer(source, source.validation_per_case)
    dev_name = f"{source.name} out-of-fold {metric_name}"
    without.update({c: (v, dev_name) for c, v in without_each(dev_scope, dev_metric).items() if c not in without})
    return metric, without, excluded
