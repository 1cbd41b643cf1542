import math

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score

from automed.metrics import choose_threshold, dice_per_class, segmentation_scores, summarize
from automed.models.postprocess import apply_postprocessing, choose_postprocessing


def test_dice_and_hd95_known_values():
    truth = np.zeros((20, 20), int)
    truth[5:10, 5:10] = 1
    pred = np.zeros((20, 20), int)
    pred[5:10, 6:11] = 1
    scores = segmentation_scores(pred, truth, n_classes=3, spacing=(2.0, 1.0))
    assert scores[1]["dice"] == pytest.approx(2 * 20 / 50)
    assert scores[1]["hd95"] == pytest.approx(1.0)
    assert scores[2] == {"dice": 1.0, "hd95": 0.0}  # absent from both: perfect, not undefined
    assert scores[0]["dice"] > 0.9 and math.isnan(scores[0]["hd95"])  # the background's surface is not measured


def test_hd95_uses_spacing():
    truth = np.zeros((20, 20), int)
    truth[5:10, 5:10] = 1
    pred = np.roll(truth, 2, axis=0)
    assert segmentation_scores(pred, truth, 2, spacing=(3.0, 1.0))[1]["hd95"] == pytest.approx(6.0)


def test_hd95_undefined_when_prediction_is_empty():
    truth = np.zeros((10, 10), int)
    truth[2:5, 2:5] = 1
    scores = segmentation_scores(np.zeros_like(truth), truth, 2, spacing=(1.0, 1.0))
    assert scores[1]["dice"] == 0.0 and math.isnan(scores[1]["hd95"])


def test_summarize_ci_contains_mean_and_drops_nan():
    values = [0.8, 0.85, 0.9, 0.7, float("nan"), 0.75]
    out = summarize(values, random_state=0)
    assert out["n"] == 5 and out["n_undefined"] == 1
    assert out["ci_low"] < out["mean"] < out["ci_high"]
    assert out["mean"] == pytest.approx(0.8)


def test_largest_component_removes_islands():
    pred = np.zeros((20, 20), np.uint8)
    pred[2:10, 2:10] = 1
    pred[15:17, 15:17] = 1
    out = apply_postprocessing(pred, [{"class": 1, "op": "largest_component"}])
    assert out[15, 15] == 0 and out[5, 5] == 1


def test_fill_holes_does_not_steal_other_classes():
    pred = np.zeros((12, 12), np.uint8)
    pred[2:10, 2:10] = 1
    pred[5, 5] = 0
    pred[6, 6] = 2
    out = apply_postprocessing(pred, [{"class": 1, "op": "fill_holes"}])
    assert out[5, 5] == 1 and out[6, 6] == 2


def test_choose_postprocessing_keeps_only_what_helps():
    rng = np.random.default_rng(0)
    truths, preds = [], []
    for _ in range(5):
        truth = np.zeros((30, 30), np.uint8)
        truth[5:20, 5:20] = 1
        pred = truth.copy()
        for y, x in rng.integers(22, 29, size=(3, 2)):
            pred[y, x] = 1  # spurious islands
        truths.append(truth)
        preds.append(pred)
    steps, before, after = choose_postprocessing(preds, truths, n_classes=2)
    assert {"class": 1, "op": "largest_component"} in steps
    assert after > before
    assert dice_per_class(apply_postprocessing(preds[0], steps), truths[0], 2)[1] == pytest.approx(1.0)
    clean_steps, b, a = choose_postprocessing(truths, truths, n_classes=2)
    assert clean_steps == [] and a == b == pytest.approx(1.0)


def test_format_ci_handles_undefined_values():
    from automed.report.tables import format_ci

    assert format_ci(0.84123, 0.8331, 0.8484) == "0.841 [0.833, 0.848]"
    assert format_ci(0.5, None, None, 2) == "0.50 [—, —]"
    assert format_ci(None, None, None) == "—"


def test_choose_threshold_returns_the_middle_of_the_best_interval():
    y = np.array([0, 0, 1, 1, 0])
    p1 = np.array([0.1, 0.3, 0.6, 0.8, 0.9])
    proba = np.column_stack([1 - p1, p1])
    # accuracy 4/5 for any threshold in (0.3, 0.6]; the edge 0.6 would sit on a case's probability
    assert choose_threshold("accuracy", y, proba) == pytest.approx(0.45)
    assert choose_threshold("fixed", y, proba) == 0.5
    balanced = choose_threshold("balanced_accuracy", y, proba)
    assert balanced_accuracy_score(y, (p1 >= balanced).astype(int)) == pytest.approx(0.8333, abs=1e-3)


def test_the_union_of_the_foreground_classes_is_scored_when_there_are_several():
    from automed.metrics import FOREGROUND, segmentation_scores

    truth = np.zeros((12, 12), np.uint8)
    truth[2:6, 2:6], truth[6:10, 2:6] = 1, 2
    swapped = truth.copy()
    swapped[truth == 1], swapped[truth == 2] = 2, 1  # every voxel in the wrong tumour class
    scores = segmentation_scores(swapped, truth, 3, (1.0, 1.0))
    assert scores[1]["dice"] == 0.0 and scores[2]["dice"] == 0.0
    assert scores[FOREGROUND] == {"dice": 1.0, "hd95": 0.0}  # the whole region is exact
    assert FOREGROUND not in segmentation_scores((truth > 0).astype(np.uint8), (truth > 0).astype(np.uint8), 2,
                                                 (1.0, 1.0))
