"""Fitting on a working grid of a target spacing, and predictions back on each input's own grid."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image as PILImage

import automed
from automed.data.io import Geometry, read_image
from automed.errors import RecipeError
from conftest import FAST_PARAMS
from test_colour_and_names import make_colour_folders


def test_labels_resample_class_by_class_and_geometry_keeps_the_extent():
    from automed.data.resample import grid_shape, resample_labels, resampled_geometry

    label = np.zeros((40, 40), np.uint8)
    label[10:30, 10:30] = 1
    label[18:22, 5:35] = 2  # a thin bar across the square
    coarse = resample_labels(label, (20, 20))
    assert set(np.unique(coarse)) == {0, 1, 2} and (coarse == 2).sum() > 0
    back = resample_labels(coarse, (40, 40))
    assert (back == label).mean() > 0.95
    geometry = Geometry((1.0, 1.0), (0.0, 0.0), (1.0, 0.0, 0.0, 1.0))
    coarser = resampled_geometry(geometry, (40, 40), grid_shape((40, 40), (1.0, 1.0), (2.0, 2.0)))
    assert coarser.spacing == (2.0, 2.0) and coarser.origin == (0.5, 0.5)  # the first voxel's centre moved


def test_a_fit_on_a_coarser_grid_predicts_on_each_inputs_own_grid(tmp_path):
    data = make_colour_folders(tmp_path / "photos", n_cases=6, side=64)
    recipe = automed.Recipe(n_folds=2, n_jobs=1, target_spacing=[2, 2],
                            rungs=[{"name": "classical", "params": FAST_PARAMS}])
    run = automed.fit(recipe, data, tmp_path / "run", progress=False)
    fingerprint = json.loads((run.folder / "fingerprint.json").read_text())
    assert fingerprint["median_shape"] == [32, 32] and fingerprint["target_spacing"] == [2.0, 2.0]
    assert "resampled to spacing" in (run.folder / "report.md").read_text(encoding="utf-8")
    written = run.predict(data / "images", tmp_path / "pred")
    dice = []
    for path in written:
        pred = read_image(path).array > 0
        truth = np.asarray(PILImage.open(data / "masks" / f"{path.stem}_lesion.png")) > 0
        assert pred.shape == truth.shape == (64, 64)
        dice.append(2 * (pred & truth).sum() / (pred.sum() + truth.sum()))
    assert np.mean(dice) > 0.8


def test_the_deep_rungs_train_and_predict_on_the_working_grid(tmp_path):
    data = make_colour_folders(tmp_path / "photos", n_cases=4, side=48)
    tiny = {"n_trials": 0, "max_epochs": 1, "min_epochs": 1, "iterations": 2, "widths": [8], "depths": [3],
            "batch_sizes": [2], "tta": False}
    recipe = automed.Recipe(n_folds=2, n_jobs=1, full_ladder=True, target_spacing=[1.5, 1.5],
                            rungs=[{"name": "classical", "params": FAST_PARAMS}, {"name": "unet2d", "params": tiny}])
    run = automed.fit(recipe, data, tmp_path / "run", progress=False)
    assert json.loads((run.folder / "rungs/unet2d/result.json").read_text())["status"] == "done"
    oof = read_image(next((run.folder / "rungs/unet2d/oof").iterdir()))
    assert oof.array.shape == (32, 32) and oof.geometry.spacing == (1.5, 1.5)
    written = run.predict(data / "images", tmp_path / "pred", rung="unet2d")
    assert {read_image(p).array.shape for p in written} == {(48, 48)}


def test_a_target_spacing_of_the_wrong_length_names_the_image(tmp_path):
    from automed.data.dataset import open_dataset
    from automed.data.fingerprint import scan_dataset

    data = make_colour_folders(tmp_path / "photos", n_cases=2)
    _, problems, _ = scan_dataset(open_dataset(data, target_spacing=(1.0, 2.0, 2.0)))
    assert any("IMD000.png: the recipe's target_spacing [1.0, 2.0, 2.0] has 3 value(s) but the image is 2D" in p
               for p in problems)
    with pytest.raises(RecipeError, match="target_spacing.*list of positive numbers"):
        automed.Recipe(target_spacing=[0, 1])
    with pytest.raises(RecipeError, match="applies to segmentation only"):
        automed.Recipe(task="classification", target_spacing=[1, 1])
