"""The classical classification rung keeps to its allotment: a search trial that would end after the search's
share is not continued, the soft-voting choice tries no candidate it cannot afford, a model that does not
converge is bounded, and library warnings are logged once each instead of printed in hundreds."""

from __future__ import annotations

import json
import logging
import time
import warnings

import numpy as np
import pytest

from automed.data.splits import make_folds
from automed.library_warnings import logged_once
from automed.cluster.storage import StudyStorage
from automed.rungs.base import FitContext
from automed.rungs.classification.classical import ClassicalClassifierParams, ClassicalClassifierRung, FitTimer


def _context(tmp_path, n: int = 60, budget_s: float | None = None) -> tuple[FitContext, np.ndarray, np.ndarray]:
    from types import SimpleNamespace

    rng = np.random.default_rng(0)
    y = np.arange(n) % 2
    X = rng.normal(size=(n, 6)) + y[:, None]
    ids = [f"c{i:02d}" for i in range(n)]
    splits = {"kind": "holdout", "dev": ids, "test": []}
    folds = make_folds(ids, [None] * n, 3, 0)
    context = FitContext(SimpleNamespace(classes=("a", "b")), None, folds, tmp_path, 0, 1, budget_s,
                         StudyStorage.resolve(None, tmp_path, None), False, splits=splits, metric="auc")
    return context, X, y


def test_a_trial_whose_fits_would_pass_the_search_end_is_not_continued(tmp_path):
    context, X, y = _context(tmp_path)
    rung = ClassicalClassifierRung(ClassicalClassifierParams(models=("logistic",), n_trials=20, tuning_fraction=0.5))
    timer = FitTimer()
    timer._seconds["logistic"] = [30.0]  # as if a logistic fit had taken 30 s: no second trial fits in 10 s
    index = {c: i for i, c in enumerate(context.splits["dev"])}
    candidates, info = rung._search(context, X, y, index, time.monotonic() + 20.0, timer)
    assert info["n_trials"] == 2 and info["stopped_trials"] == [1]  # the first trial always completes
    assert candidates[0]["model"] == "logistic"


def test_the_soft_voting_choice_skips_a_candidate_it_cannot_afford(tmp_path):
    context, X, y = _context(tmp_path)
    rung = ClassicalClassifierRung(ClassicalClassifierParams(models=("logistic", "random_forest")))
    index = {c: i for i, c in enumerate(context.splits["dev"])}
    candidates = [{"model": "logistic", "class_weight": "none", "C": 1.0, "l1_ratio": 0.0},
                  {"model": "random_forest", "class_weight": "none", "n_estimators": 100, "max_features": "sqrt",
                   "min_samples_leaf": 1}]
    timer = FitTimer()
    timer._seconds["random_forest"] = [60.0]
    config, oof, history = rung._choose(context, candidates, X, y, index, time.monotonic() + 30.0, timer)
    assert config["model"] == "logistic" and oof.shape == (len(y), 2)
    assert "skipped" in history[1] and "after the rung's allotment" in history[1]["skipped"]
    # without a deadline the same candidate is tried
    _, _, history = rung._choose(context, candidates, X, y, index, None, FitTimer())
    assert "skipped" not in history[1]


def test_a_logistic_regression_that_does_not_converge_is_bounded_and_its_warning_logged_once(caplog):
    from automed.models.tabular import LOGISTIC_MAX_ITER, build_tabular_classifier

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(400, 200)), rng.integers(0, 2, 400)  # noise: saga with l1 creeps for thousands of steps
    model = build_tabular_classifier({"model": "logistic", "class_weight": "none", "C": 10.0, "l1_ratio": 0.5}, 0, 1)
    with caplog.at_level(logging.INFO, logger="automed"), logged_once("rung classical") as caught:
        for _ in range(3):
            model.fit(X, y)
    assert model[-1].n_iter_.max() <= LOGISTIC_MAX_ITER
    assert caught and caught[0]["category"] == "ConvergenceWarning" and caught[0]["count"] == 3
    lines = [r.getMessage() for r in caplog.records if "ConvergenceWarning" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith("rung classical: ConvergenceWarning") and "(3 times)" in lines[0]


def test_warnings_are_counted_once_each_and_deprecations_left_to_python():
    with logged_once("here") as caught:
        for k in range(50):
            warnings.warn("same thing", UserWarning)
        warnings.warn("other", RuntimeWarning)
        warnings.warn("for authors", DeprecationWarning)
    assert caught == [{"category": "UserWarning", "message": "same thing", "count": 50},
                      {"category": "RuntimeWarning", "message": "other", "count": 1}]


@pytest.mark.slow  # an end-to-end fit of the default ladder: `make test-all` runs it
def test_the_default_classification_ladder_climbs_under_a_budget(tmp_path, monkeypatch):
    import automed
    from conftest import make_npz

    from automed.deep import transfer

    def offline(*args, **kwargs):
        raise transfer.WeightsUnavailable("ImageNet weights could not be obtained (offline in this test)")

    monkeypatch.setattr(transfer, "pretrained_state_dict", offline)
    data = make_npz(tmp_path / "toy.npz", sizes=(60, 20, 30))
    run = automed.fit(automed.Recipe(task="classification", n_jobs=1, budget="150s"), data, tmp_path / "run",
                      progress=False)
    rows = {r["rung"]: r for r in run.leaderboard()}
    assert list(rows) == ["classical", "cnn", "ssl", "vgg16", "inception_v3", "ensemble"]
    assert rows["classical"]["status"] == "done" and rows["cnn"]["status"] == "done"
    assert "weights" in rows["vgg16"]["reason"] and "weights" in rows["inception_v3"]["reason"]
    for name in ("vgg16", "inception_v3"):  # skipped before planning: they took no share of the budget
        assert json.loads((run.folder / "rungs" / name / "result.json").read_text())["estimate"] is None
    assert run.report_["fit_seconds"] <= 150 * 1.05 + 10


def test_without_a_budget_the_classical_rung_bounds_itself_and_reports_where_its_time_went(fitted_classification_run):
    result = json.loads((fitted_classification_run / "rungs" / "classical" / "result.json").read_text())
    assert result["estimate"]["allotted_seconds"] == 600.0  # its max_seconds: the fit had no budget
    stages = result["details"]["stage_seconds"]
    assert list(stages) == ["features", "search", "out-of-fold predictions and the soft-voting choice", "final model"]
    assert "varying features" in result["estimate"]["note"] and "timed on a probe" in result["estimate"]["note"]
    assert "Where its time went: features" in (fitted_classification_run / "report.md").read_text()


def test_a_cached_fit_plans_from_its_cache_without_probing(tmp_path, monkeypatch):
    import automed
    from automed.rungs.classification import classical_features
    from conftest import FAST_CLASSIFICATION, make_npz

    data = make_npz(tmp_path / "toy.npz", sizes=(40, 12, 16))
    recipe = automed.Recipe(task="classification", n_folds=3, n_jobs=1,
                            rungs=[{"name": "classical", "params": FAST_CLASSIFICATION}])
    automed.fit(recipe, data, tmp_path / "run", progress=False)

    def no_probe(*args, **kwargs):
        raise AssertionError("probed although the run's cache holds the features")

    monkeypatch.setattr(classical_features, "probe_features", no_probe)
    monkeypatch.setattr("automed.rungs.classification.classical.probe_features", no_probe)
    run = automed.fit(recipe, data, tmp_path / "run", overwrite=True, progress=False)
    note = json.loads((run.folder / "rungs" / "classical" / "result.json").read_text())["estimate"]["note"]
    assert note.startswith("features cached + ")
