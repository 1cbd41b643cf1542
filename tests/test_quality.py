"""The quality record of predictions: how far each image is from the training images, how unsure the rung is, and
a flag whose threshold was chosen on the run's validation cases."""

from __future__ import annotations

import csv
import json
import logging

import numpy as np
import pytest

import automed
from automed.quality.calibration import MAX_FLAGGED, calibrate
from automed.quality.descriptors import descriptor_names, image_descriptors
from automed.quality.record import QUALITY_CSV, QUALITY_HTML, QUALITY_JSON, UNCERTAINTY, read_quality
from automed.quality.reference import ImageReference
from cli_checks import copy_run
from conftest import blob_case, make_npz, write


def _images(n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [blob_case((12, 14, 12), rng)[0][None] for _ in range(n)]


def test_an_image_from_another_scanner_lies_beyond_every_training_image():
    training = np.stack([image_descriptors(image) for image in _images(30, 0)])
    reference = ImageReference.fit(training, descriptor_names(1, 3))
    same = [reference.percentile(reference.distance(image_descriptors(image))) for image in _images(10, 1)]
    shifted = _images(1, 2)[0]
    shifted = (shifted / 200.0) ** 2 * 300 + np.random.default_rng(3).normal(0, 30, shifted.shape)
    assert reference.percentile(reference.distance(image_descriptors(shifted))) == 100.0
    assert np.median(same) < 90, same
    assert reference.outstanding(image_descriptors(shifted))[0][0].startswith("channel0_")


def test_a_training_case_is_not_its_own_neighbour():
    training = np.stack([image_descriptors(image) for image in _images(12, 0)])
    reference = ImageReference.fit(training, descriptor_names(1, 3))
    assert (reference.case_distances(training) > 0).all()
    assert np.allclose(np.sort(reference.case_distances(training)), reference.calibration)


def test_the_review_threshold_is_chosen_on_the_validation_cases_to_catch_the_bad_ones():
    rng = np.random.default_rng(0)
    bad = np.zeros(100, bool)
    bad[:10] = True
    telling = np.where(bad, rng.normal(3, 1, 100), rng.normal(0, 1, 100))
    calibration = calibrate({"uncertainty": telling, "distance": rng.normal(0, 1, 100)}, bad, "ten bad cases")
    assert calibration.components == ("uncertainty",)  # the distance tells nothing here: left out of the score
    assert calibration.component_auc["uncertainty"] > 0.9 and calibration.component_auc["distance"] < 0.7
    assert calibration.auc["mean"] > 0.8 and calibration.auc["ci_low"] < calibration.auc["mean"]
    assert calibration.auc["n_bad"] == 10
    flagged = calibration.flagged
    assert flagged["n_flagged"] <= MAX_FLAGGED * 100
    assert flagged["bad_rate_flagged"] > 3 * flagged["bad_rate_unflagged"]
    scores = [calibration.score({"uncertainty": u, "distance": 99.0}) for u in (-1.0, 5.0)]
    assert scores[0] < calibration.threshold <= scores[1]


def test_without_a_bad_validation_case_the_score_is_not_judged():
    calibration = calibrate({"uncertainty": np.arange(20.0)}, np.zeros(20, bool), "none bad")
    assert calibration.auc["mean"] is None and calibration.flagged["n_flagged"] == 2


def _new_images(folder, seed: int):
    """Three images like the training ones and one of another modality (dark structure, bright speckled
    background)."""
    rng = np.random.default_rng(seed)
    for i in range(3):
        write(blob_case((12, 14, 12), rng)[0], folder / f"same_{i}.nii.gz", spacing=(1.0, 1.0, 1.5))
    image, _ = blob_case((12, 14, 12), rng)
    other = 400.0 - 2 * image + rng.exponential(60, image.shape)
    write(other.astype(np.float32), folder / "other_modality.nii.gz", spacing=(1.0, 1.0, 1.5))
    return folder


def test_segmentation_predictions_carry_a_quality_record(fitted_run, tmp_path):
    record, why = read_quality(fitted_run)
    assert record is not None, why
    calibration = record.rungs["classical"]
    assert set(calibration.components) <= {"distance", "structure"}  # no model per fold: no held-out entropy
    assert set(calibration.component_auc) == {"distance", "structure"}
    assert "Dice at or below" in calibration.bad and calibration.flagged["n"] == 10
    assert any("entropy" in note for note in record.notes)
    images = _new_images(tmp_path / "new", seed=7)
    automed.load(fitted_run).predict(images, tmp_path / "pred")
    rows = list(csv.DictReader((tmp_path / "pred" / QUALITY_CSV).open()))
    by_case = {r["case"]: r for r in rows}
    assert rows[0]["case"] == "other_modality"  # the most suspect first
    assert by_case["other_modality"]["flag"] == "out_of_distribution"
    assert "further from the training images" in by_case["other_modality"]["reason"]
    assert [by_case[f"same_{i}"]["flag"] for i in range(3)].count("out_of_distribution") == 0
    for row in rows:
        assert 0 <= float(row["entropy"]) <= 1 and float(row["volume_1"]) >= 0 and row["quality_score"]
    report = (fitted_run / "report.md").read_text()
    assert "## Which predictions not to trust" in report and "Dice at or below" in report
    made = json.loads((tmp_path / "pred" / ".automed-predictions.json").read_text())
    assert QUALITY_CSV in json.dumps(made)
    page = (tmp_path / "pred" / QUALITY_HTML).read_text()
    assert "other_modality" in page and "data:image/png;base64," in page and "same_0" not in page
    assert not (tmp_path / "pred" / UNCERTAINTY).exists()


def test_uncertainty_maps_lie_beside_the_masks(fitted_run, tmp_path):
    import SimpleITK as sitk

    images = _new_images(tmp_path / "new", seed=9)
    automed.load(fitted_run).predict(images, tmp_path / "pred", uncertainty_maps=True)
    for name in ("same_0", "other_modality"):
        mask = sitk.ReadImage(str(tmp_path / "pred" / f"{name}.nii.gz"))
        unsure = sitk.ReadImage(str(tmp_path / "pred" / UNCERTAINTY / f"{name}.nii.gz"))
        assert unsure.GetSize() == mask.GetSize() and unsure.GetSpacing() == mask.GetSpacing()
        assert sitk.GetArrayFromImage(unsure).max() > 0


def test_an_older_run_without_statistics_predicts_as_before_and_says_why(fitted_run, tmp_path, caplog):
    run = copy_run(fitted_run, tmp_path / "run")
    (run / QUALITY_JSON).unlink()
    images = _new_images(tmp_path / "new", seed=8)
    with caplog.at_level(logging.WARNING, logger="automed"):
        written = automed.load(run).predict(images, tmp_path / "pred")
    assert len(written) == 4 and not (tmp_path / "pred" / QUALITY_CSV).exists()
    assert any("no quality.json" in r.getMessage() and "fit again" in r.getMessage() for r in caplog.records)


def test_classification_predictions_carry_the_quality_columns(fitted_classification_run, tmp_path):
    record, why = read_quality(fitted_classification_run)
    assert record is not None, why
    assert set(record.rungs["classical"].component_auc) == {"distance", "uncertainty"}
    data = make_npz(tmp_path / "new.npz", seed=9, sizes=(4, 4, 8))
    with np.load(data) as z:
        arrays = {k: z[k].copy() for k in z.files}
    rng = np.random.default_rng(0)
    arrays["test_images"][0] = (255 - arrays["test_images"][0]) // 2 + rng.integers(0, 60, (28, 28)).astype(np.uint8)
    np.savez(data, **arrays)
    out = tmp_path / "pred.csv"
    automed.load(fitted_classification_run).predict(data, out, split="test")
    rows = list(csv.DictReader(out.open()))
    assert [r["case"] for r in rows] == [f"test_{i}" for i in range(8)]  # the CSV keeps the input's order
    assert rows[0]["flag"] == "out_of_distribution"
    assert sum(r["flag"] == "out_of_distribution" for r in rows[1:]) <= 1
    for row in rows:
        assert 0 <= float(row["uncertainty"]) <= 1 and float(row["distance_percentile"]) <= 100


def test_the_training_cases_distances_leave_each_case_itself_out_despite_rounding():
    rng = np.random.default_rng(0)
    training = rng.normal(0, 1, (200, 16))
    reference = ImageReference.fit(training, [f"d{i}" for i in range(16)])
    found = reference._neighbours(reference.rows, 1)
    assert np.allclose(np.sort(found[:, 1:].mean(axis=1)), reference.calibration)


def test_a_calibration_that_never_flags_survives_its_json_record():
    from automed.quality.calibration import Calibration

    calibration = calibrate({"uncertainty": np.ones(6)}, np.array([True] + [False] * 5), "one bad case of six")
    assert calibration.threshold == float("inf")  # every threshold would flag all six alike cases
    again = Calibration.from_dict(json.loads(json.dumps(calibration.to_dict(), allow_nan=False)))
    assert again.threshold == float("inf") and again.score({"uncertainty": 1.0}) == 100.0


def test_an_ensembles_members_disagreement_is_read_from_their_out_of_sample_probabilities():
    from automed.quality.classification import _members_proba, classification_values
    from automed.results import RungResult

    def result(name, probas, details=None):
        return RungResult(name, "done", details=details or {}, validation_per_case=[
            {"case_id": f"c{i}", "label": "0", "proba": p} for i, p in enumerate(probas)])

    a = result("cnn", [[0.9, 0.1], [0.5, 0.5]])
    b = result("ssl", [[0.9, 0.1], [0.1, 0.9]])
    ensemble = result("ensemble", [[0.9, 0.1], [0.3, 0.7]], {"members": ["cnn", "ssl"]})
    members = _members_proba(ensemble, {"cnn": a, "ssl": b}, ["c0", "c1"])
    values = classification_values(members.mean(axis=0), members)
    assert values[0]["disagreement"] == pytest.approx(0.0) and values[1]["disagreement"] == pytest.approx(0.2)
    assert values[0]["uncertainty"] == pytest.approx(0.2) and values[1]["uncertainty"] == pytest.approx(0.6)
    assert _members_proba(a, {"cnn": a}, ["c0"]) is None  # a rung that combines none
    assert _members_proba(ensemble, {"cnn": a, "ssl": b}, ["c0", "c9"]) is None  # a member lacks a case
