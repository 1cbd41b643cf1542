"""The shared Optuna search helper."""

from __future__ import annotations

import time

import optuna

from automed.models.search import SearchObjective, optimize_within


def _study() -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(direction="maximize")


def test_no_trial_starts_that_the_last_one_says_cannot_finish():
    def slow(trial: optuna.Trial) -> float:
        time.sleep(0.5)
        return trial.suggest_float("x", 0, 1)

    plain = _study()
    plain.optimize(slow, n_trials=5, timeout=0.9)
    assert len(plain.trials) == 2  # Optuna's timeout lets a second trial start at 0.5 s and end at 1.0 s
    bounded = _study()
    optimize_within(bounded, SearchObjective(slow), n_trials=5, timeout_s=0.9)
    assert len(bounded.trials) == 1


def test_fast_trials_run_to_the_trial_limit():
    study = _study()
    optimize_within(study, SearchObjective(lambda t: t.suggest_float("x", 0, 1)), n_trials=5, timeout_s=30.0)
    assert len(study.trials) == 5
    optimize_within(study, SearchObjective(lambda t: t.suggest_float("x", 0, 1)), n_trials=8, timeout_s=None)
    assert len(study.trials) == 8  # the limit counts the trials the study already holds
    optimize_within(study, SearchObjective(lambda t: t.suggest_float("x", 0, 1)), n_trials=3, timeout_s=None)
    assert len(study.trials) == 8


def test_the_final_training_gets_the_unused_search_time_and_pays_for_an_overrun():
    from automed.rungs.time_plan import final_seconds

    settings = {"n_trials": 3, "trial_seconds": 100.0, "final_seconds": 600.0}
    assert final_seconds(settings, 240.0) == 660.0  # 60 s of search left over
    assert final_seconds(settings, 375.0) == 525.0  # trials ran 25% over: 75 s less for the final training
    assert final_seconds(settings, 375.0, n_trainings=3) == 575.0
    assert final_seconds(settings, 2000.0) == 300.0  # never below half the plan's share
    assert final_seconds({**settings, "n_trials": 0}, 0.0) == 600.0
