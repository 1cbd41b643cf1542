"""The classical rung's auto-context stage: its features, its slab-wise prediction and its place in a fit."""

from __future__ import annotations

import numpy as np
import pytest

from automed.features.context import context_features, n_context_features
from automed.features.voxel import VoxelFeatures
from conftest import FAST_PARAMS, make_msd


def test_context_features_are_each_foreground_probability_raw_then_smoothed() -> None:
    rng = np.random.default_rng(0)
    proba = rng.dirichlet(np.ones(3), size=(6, 7, 5)).transpose(3, 0, 1, 2).astype(np.float32)
    features = context_features(proba, (1.0, 2.0))
    assert features.shape == (6 * 7 * 5, n_context_features(3, 3, (1.0, 2.0), ())) == (210, 6)
    assert features.dtype == np.float32
    np.testing.assert_array_equal(features[:, 0], proba[1].ravel())
    np.testing.assert_array_equal(features[:, 3], proba[2].ravel())
    # smoothing keeps a probability's mean and narrows its spread, more at the larger scale
    assert abs(features[:, 1].mean() - proba[1].mean()) < 0.02
    assert proba[1].std() > features[:, 1].std() > features[:, 2].std()


def test_offset_columns_read_the_smoothed_probability_before_and_after_along_each_axis() -> None:
    from scipy.ndimage import gaussian_filter

    from automed.features.context import OFFSET_SIGMA

    proba = np.zeros((2, 20, 9), np.float32)
    proba[1, 10, 4] = 1.0
    proba[0] = 1.0 - proba[1]
    features = context_features(proba, (), (3,))
    assert features.shape == (180, n_context_features(2, 2, (), (3,))) == (180, 5)
    smooth = gaussian_filter(proba[1], OFFSET_SIGMA, mode="nearest")
    columns = [features[:, k].reshape(20, 9) for k in range(5)]  # raw, then per axis: 3 voxels after, before
    peak = smooth[10, 4]
    assert columns[1][7, 4] == pytest.approx(peak) and columns[2][13, 4] == pytest.approx(peak)
    assert columns[3][10, 1] == pytest.approx(peak) and columns[4][10, 7] == pytest.approx(peak)
    assert columns[1][10, 4] < peak / 2


def test_context_columns_reach_every_slab_of_a_volume() -> None:
    from lightgbm import LGBMClassifier

    from automed.models.classical import predict_proba_volume

    rng = np.random.default_rng(1)
    image = rng.normal(size=(1, 10, 8, 6)).astype(np.float32)
    bank = VoxelFeatures(sigma_min=1.0, sigma_max=1.0, num_sigma=1, include_rank=False)
    rows = bank.compute(image).reshape(bank.n_features(1, 3), -1).T
    extra = rng.uniform(size=(rows.shape[0], 2)).astype(np.float32)
    labels = (extra[:, 0] > 0.5).astype(int)  # the label lives in the extra column only
    model = LGBMClassifier(n_estimators=20, verbose=-1).fit(np.hstack([rows, extra]), labels)
    whole = predict_proba_volume(model, image, bank, 2, max_voxels=10**6, extra=extra)
    slabbed = predict_proba_volume(model, image, bank, 2, max_voxels=8 * 6 * 3, extra=extra)
    np.testing.assert_allclose(whole, slabbed, atol=1e-6)
    assert ((whole[1].ravel() > 0.5) == labels.astype(bool)).mean() > 0.95


@pytest.mark.slow  # an end-to-end fit: `make test-all` runs it
@pytest.mark.parametrize("auto_context", [True, False])
def test_fit_records_both_stages_and_keeps_the_second_only_where_it_raises_dice(tmp_path, auto_context) -> None:
    import automed
    from automed.data.io import read_image

    data = make_msd(tmp_path / "data", n_cases=8)
    recipe = automed.Recipe(n_folds=2, n_jobs=1, rungs=[
        {"name": "classical", "params": {**FAST_PARAMS, "auto_context": auto_context}}])
    run = automed.fit(recipe, data, tmp_path / "run", progress=False)
    details = run.report_["rungs"][0]["details"]
    context_file = tmp_path / "run" / "rungs" / "classical" / "context_model.joblib"
    if not auto_context:
        assert details["auto_context"] is None and not context_file.exists()
        return
    info = details["auto_context"]
    assert info["kept"] == (info["oof_dice_second_stage"] > info["oof_dice_first_stage"])
    assert context_file.is_file() == info["kept"]
    assert info["n_features"] == n_context_features(3, 3, info["sigmas"], info["offsets"])
    # the fitted rung predicts through both stages from the run folder
    image = data / "imagesTr" / "case_000.nii.gz"
    (written,) = run.predict(image, tmp_path / "pred")
    predicted = read_image(written).array
    assert predicted.shape == read_image(image).array.shape and set(np.unique(predicted)) <= {0, 1, 2}
    assert "Auto-context: a second stage" in (tmp_path / "run" / "report.md").read_text()


def test_context_sigmas_are_checked() -> None:
    from automed.errors import RecipeError
    from automed.rungs.segmentation.classical import ClassicalRung

    with pytest.raises(RecipeError, match="context_sigmas"):
        ClassicalRung.Params(context_sigmas=(0.0,))


def test_counted_dice_equals_monai_dice_empty_classes_included() -> None:
    from automed.metrics import counted_dice_per_class, dice_per_class

    rng = np.random.default_rng(2)
    for shape in [(9, 8, 7), (30, 20)]:
        truth = rng.integers(0, 3, shape).astype(np.uint8)
        pred = np.where(rng.uniform(size=shape) < 0.7, truth, rng.integers(0, 3, shape)).astype(np.uint8)
        np.testing.assert_allclose(counted_dice_per_class(pred, truth, 4), dice_per_class(pred, truth, 4), atol=1e-6)
    empty = np.zeros((5, 5), np.uint8)
    np.testing.assert_allclose(counted_dice_per_class(empty, empty, 3), dice_per_class(empty, empty, 3))
