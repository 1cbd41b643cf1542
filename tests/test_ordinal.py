"""Ordered classes (grades): the recipe's class order, ordinal models searched against plain
multi-class, and quadratic-weighted kappa in the scores and the report."""

from __future__ import annotations

import json

import numpy as np
import pytest

import automed
from automed.errors import DataError, RecipeError
from conftest import FAST_CLASSIFICATION


def graded_npz(path, seed: int = 0, sizes=(60, 20, 40), names=(0, 1, 2)):
    """Disc images whose brightness rises with the grade (0, 1, 2), stored under ``names``."""
    rng = np.random.default_rng(seed)
    grid = np.mgrid[:20, :20]
    disc = ((grid[0] - 10) ** 2 + (grid[1] - 10) ** 2) < 25
    arrays = {}
    for split, n in zip(("train", "val", "test"), sizes):
        grades = rng.integers(0, 3, n)
        images = rng.normal(60, 12, (n, 20, 20))
        images[:, disc] += (30 * grades)[:, None]
        arrays[f"{split}_images"] = np.clip(images, 0, 255).astype(np.uint8)
        arrays[f"{split}_labels"] = np.array(names)[grades][:, None]
    np.savez(path, **arrays)
    return path


def test_cumulative_ordinal_recombines_binary_models_into_probabilities():
    from sklearn.linear_model import LogisticRegression

    from automed.models.ordinal import CumulativeOrdinal

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 4, (300, 1))
    y = np.clip(np.floor(x[:, 0] + rng.normal(0, 0.3, 300)), 0, 3).astype(int)
    model = CumulativeOrdinal(LogisticRegression()).fit(x, y)
    proba = model.predict_proba(x)
    assert proba.shape == (300, 4) and np.allclose(proba.sum(axis=1), 1) and proba.min() >= 0
    assert (model.predict(x) == y).mean() > 0.7
    assert len(model.estimators_) == 3


def test_squared_emd_grows_with_how_many_grades_a_prediction_is_off():
    import torch

    from automed.models.ordinal import squared_emd_loss

    target = torch.tensor([0])
    confident = {k: torch.full((1, 4), -10.0).index_fill(1, torch.tensor([k]), 10.0) for k in range(4)}
    losses = [float(squared_emd_loss(confident[k], target)) for k in range(4)]
    assert losses[0] < 1e-6 and losses[0] < losses[1] < losses[2] < losses[3]


def test_quadratic_weighted_kappa_is_scored():
    from automed.metrics import classification_scores

    y = np.array([0, 1, 2, 2])
    perfect = np.eye(3)[y]
    assert classification_scores(y, perfect, None)["qwk"] == pytest.approx(1.0)
    near = np.eye(3)[[0, 1, 1, 2]]
    far = np.eye(3)[[0, 1, 0, 2]]
    assert classification_scores(y, far, None)["qwk"] < classification_scores(y, near, None)["qwk"] < 1.0


@pytest.mark.parametrize("recipe, message", [
    (dict(task="classification", metric="qwk"), "metric 'qwk'.*needs ordered classes: set 'ordinal: true'"),
    (dict(task="segmentation", ordinal=True), "apply to classification only"),
    (dict(task="classification", class_order=["a", "a"]), "class_order names a class twice"),
    (dict(task="classification", class_order="a,b"), "must be a list of class names"),
])
def test_ordinal_recipe_mistakes_are_refused(recipe, message):
    with pytest.raises(RecipeError, match=message):
        automed.Recipe(**recipe)


def test_a_class_order_that_does_not_name_the_classes_is_an_error_naming_the_data(tmp_path):
    from automed.data.classification import open_classification

    data = graded_npz(tmp_path / "grades.npz")
    assert open_classification(data, class_order=("2", "1", "0")).classes == ("2", "1", "0")
    with pytest.raises(DataError, match=r"grades.npz: the recipe's class_order \['0', '1'\] does not name"):
        open_classification(data, class_order=("0", "1"))


@pytest.mark.slow  # an end-to-end fit: `make test-all` runs it
def test_an_ordinal_fit_searches_ordinal_models_and_reports_kappa(tmp_path):

    data = graded_npz(tmp_path / "grades.npz", names=(7, 3, 5))  # grade order differs from the sorted names
    recipe = automed.Recipe(task="classification", n_folds=3, n_jobs=1, ordinal=True, class_order=["7", "3", "5"],
                            metric="qwk", rungs=[{"name": "classical", "params": {**FAST_CLASSIFICATION,
                                                                                  "n_trials": 6}}])
    run = automed.fit(recipe, data, tmp_path / "run", progress=False)
    rung = run.report_["rungs"][0]
    assert rung["metric"]["name"] == "qwk" and rung["metric"]["mean"] > 0.6
    assert list(json.loads((run.folder / "fingerprint.json").read_text())["classes"].values()) == ["7", "3", "5"]
    study = run.study("classical-classification")
    assert all("ordinal" in t.params for t in study.trials)
    report = (run.folder / "report.md").read_text(encoding="utf-8")
    assert "quadratic-weighted kappa" in report and "ordered grades, lowest first" in report


def test_the_deep_rungs_search_the_ordinal_loss_for_ordered_classes():
    import torch

    from automed.deep.classification import build_loss
    from automed.rungs.classification.deep_params import DeepClassifierParams, loss_choices

    params = DeepClassifierParams()
    assert "emd" not in loss_choices(params, False) and loss_choices(params, True)[-1] == "emd"
    loss = build_loss("emd", np.array([5, 5, 5]))
    assert float(loss(torch.zeros(2, 3), torch.tensor([0, 2]))) > 0
