"""The classical rung's search chooses a configuration the rest of the rung can afford."""

from __future__ import annotations

import optuna
import pytest

from automed.rungs.segmentation.classical_search import affordable_trial
from conftest import FAST_PARAMS, make_msd


def _trial(value: float, trees: int, fit_seconds: float | None) -> optuna.trial.FrozenTrial:
    attrs = {} if fit_seconds is None else {"fit_seconds": fit_seconds, "predict_seconds_per_case": 0.1}
    return optuna.trial.create_trial(value=value, params={"n_estimators": trees},
                                     distributions={"n_estimators": optuna.distributions.IntDistribution(50, 400)},
                                     user_attrs=attrs)


def _projection(trial: optuna.trial.FrozenTrial) -> float | None:
    fit = trial.user_attrs.get("fit_seconds")
    return None if fit is None else 10 * fit


def test_the_best_configuration_is_kept_when_it_fits_or_without_a_limit() -> None:
    trials = [_trial(0.80, 100, 5.0), _trial(0.85, 350, 30.0)]
    chosen, why = affordable_trial(trials, None, _projection)
    assert chosen.params["n_estimators"] == 350 and "no time limit" in why
    chosen, why = affordable_trial(trials, 400.0, _projection)
    assert chosen.params["n_estimators"] == 350 and "300 s projected" in why


def test_a_better_configuration_the_allotment_cannot_pay_for_gives_way_to_the_best_that_fits() -> None:
    trials = [_trial(0.85, 350, 30.0), _trial(0.80, 100, 5.0), _trial(0.83, 200, 10.0)]
    chosen, why = affordable_trial(trials, 150.0, _projection)
    assert chosen.params["n_estimators"] == 200
    assert "the best that fits: 100 s projected" in why and "300 s" in why
    chosen, why = affordable_trial(trials, 20.0, _projection)  # none fits: the cheapest
    assert chosen.params["n_estimators"] == 100 and "none fits" in why


def test_a_trial_of_unknown_cost_is_taken_as_affordable() -> None:
    chosen, _ = affordable_trial([_trial(0.85, 350, None), _trial(0.80, 100, 1.0)], 5.0, _projection)
    assert chosen.params["n_estimators"] == 350


@pytest.mark.slow  # an end-to-end fit: `make test-all` runs it
@pytest.mark.parametrize("budget_s", [None, 600.0])
def test_a_fit_records_each_trials_cost_and_why_its_configuration_was_chosen(tmp_path, budget_s) -> None:
    import automed

    data = make_msd(tmp_path / "data", n_cases=8)
    recipe = automed.Recipe(n_folds=2, n_jobs=1, budget_s=budget_s, rungs=[
        {"name": "classical", "params": {**FAST_PARAMS, "n_trials": 3}}])
    run = automed.fit(recipe, data, tmp_path / "run", progress=False)
    search = run.report_["rungs"][0]["details"]["search"]
    assert search["n_trials"] == 3 and search["chosen_value"] <= search["best_value"]
    assert run.report_["rungs"][0]["details"]["model"] == search["chosen_params"]
    assert ("no time limit" in search["choice"]) == (budget_s is None)
    if budget_s is not None:  # a tiny fit: the best configuration fits, with its projection stated
        assert search["chosen_params"] == search["best_params"] and "s projected" in search["choice"]
    study = run.study("classical")
    assert all(t.user_attrs["fit_seconds"] > 0 and t.user_attrs["predict_seconds_per_case"] > 0 for t in study.trials)
