"""The classical segmentation rung's Optuna search: model family and hyperparameters, tuned on an
inner split of fold 0's training cases so that fold 0's validation cases never influence tuning."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from automed.models.search import SearchObjective, open_study, optimize_within
from automed.rungs.base import FitContext

__all__ = ["DEFAULT_TRIAL", "affordable_trial", "search_configuration", "search_space"]

log = logging.getLogger(__name__)
#: The first trial: a sound LightGBM default (the search's best on the hippocampus).
DEFAULT_TRIAL = {"model": "lightgbm", "n_estimators": 200, "num_leaves": 31, "learning_rate": 0.1,
                 "min_child_samples": 20, "colsample_bytree": 0.8}


def search_space(trial: Any, models: Sequence[str]) -> dict[str, Any]:
    """A configuration suggested by an Optuna ``trial`` among the model families ``models``."""
    model = trial.suggest_categorical("model", list(models))
    if model == "lightgbm":
        return {
            "model": model,
            "n_estimators": trial.suggest_int("n_estimators", 100, 400, step=50),
            "num_leaves": trial.suggest_int("num_leaves", 15, 127, log=True),
            "learning_rate": trial.suggest_float("learning_rate", 0.03, 0.3, log=True),
            "min_child_samples": trial.suggest_int("min_child_samples", 5, 100, log=True),
            "colsample_bytree": trial.suggest_float("colsample_bytree", 0.5, 1.0),
        }
    return {
        "model": model,
        "n_estimators": trial.suggest_int("rf_n_estimators", 50, 150, step=50),
        "max_depth": trial.suggest_int("max_depth", 8, 20),
        "min_samples_leaf": trial.suggest_int("min_samples_leaf", 1, 20, log=True),
        "max_features": trial.suggest_categorical("max_features", ["sqrt", 0.3, 0.5]),
    }


def search_configuration(rung: Any, context: FitContext, cases: dict[str, Any], store: dict[str, Any],
                         budget_s: float | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The best configuration of ``rung`` (a :class:`~automed.rungs.segmentation.classical.ClassicalRung` whose
    training cases are prepared in ``store``) and what the search did, within ``budget_s`` times the
    rung's ``tuning_fraction``."""
    import optuna

    from automed.data.splits import inner_split

    params, fp = rung.params, context.fingerprint
    if params.n_trials == 1 and "lightgbm" in params.models:  # its one trial would be the default: nothing to compare
        return dict(DEFAULT_TRIAL), {"n_trials": 0, "best_params": dict(DEFAULT_TRIAL),
                                     "note": "n_trials 1: LightGBM's default configuration, without a search"}
    train_ids = context.folds[0]["train"]
    groups = {c.case_id: c.group for c in context.dataset.cases}
    inner = inner_split(train_ids, [groups[c] for c in train_ids], context.random_state)
    tune_ids = inner["val"][: params.n_tuning_cases]
    labels = [store[c].label for c in tune_ids]
    first = 0 if context.include_background else 1

    def objective(trial: optuna.Trial) -> float:
        config = rung.search_space(trial)
        t0 = time.monotonic()
        model = rung._train(config, store, inner["train"], context)
        t1 = time.monotonic()
        probas = [rung._case_proba(model, cases[c], store[c], context) for c in tune_ids]
        weight, dice = rung._choose_background_weight(probas, labels, fp.n_classes, first)
        trial.set_user_attr("background_weight", weight)
        trial.set_user_attr("fit_seconds", t1 - t0)
        trial.set_user_attr("predict_seconds_per_case", (time.monotonic() - t1) / len(tune_ids))
        return dice

    default = DEFAULT_TRIAL if "lightgbm" in params.models else None
    study = open_study(rung.name, context.optuna_storage, context.random_state, default, about={
        "rung": rung.name, "task": "segmentation", "metric": "dice",
        "measured_on": "an inner validation split of the training cases"})
    timeout = None if budget_s is None else max(1.0, budget_s * params.tuning_fraction)
    started = time.monotonic()
    optimize_within(study, SearchObjective(objective), params.n_trials, timeout, context.progress)
    seconds_left = None if budget_s is None else budget_s - (time.monotonic() - started)
    n_cases = len(store)
    n_fold_train = max(len(f["train"]) for f in context.folds)

    def rest_of_rung(trial: Any) -> float | None:
        """Seconds the rest of the rung would take with ``trial``'s configuration: every stage's
        cross-validation fits and out-of-fold predictions, and its final fit, scaled from the
        trial's own fit (model fits cost per training sample) and predictions."""
        fit_s, predict_s = trial.user_attrs.get("fit_seconds"), trial.user_attrs.get("predict_seconds_per_case")
        if fit_s is None or predict_s is None:  # a trial of an older or interrupted fit
            return None
        stages = 2 if params.auto_context else 1
        fit_per_case = fit_s / max(1, len(inner["train"]))  # each case gives the same number of samples
        return stages * (fit_per_case * (len(context.folds) * n_fold_train + n_cases) + predict_s * n_cases)

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    chosen, choice = affordable_trial(complete, seconds_left, rest_of_rung)
    config = _config_from_trial(chosen.params)
    info = {"n_trials": len(study.trials), "best_value": study.best_value,
            "best_params": _config_from_trial(study.best_params), "chosen_value": chosen.value,
            "chosen_params": config, "choice": choice, "tuning_cases": len(tune_ids),
            "inner_train_cases": len(inner["train"]), "timeout_s": timeout,
            "objective": "mean Dice (background included when the recipe says so) on an inner validation "
                         "split of fold 0's training cases"}
    log.info("classical: search done, %d trials, best Dice %.4f; chose Dice %.4f with %s (%s)",
             len(study.trials), study.best_value, chosen.value, config, choice)
    return config, info


def affordable_trial(trials: Sequence[Any], seconds_left: float | None,
                     rest_of_rung: Any) -> tuple[Any, str]:
    """The best of the complete ``trials`` whose configuration the rest of the rung can afford.

    ``rest_of_rung(trial)`` projects the seconds the rung still needs with that trial's
    configuration (``None``: unknown, taken as affordable). Without a time limit, or when no
    configuration fits ``seconds_left``, the best, or the cheapest, is chosen. A search that
    picks the best inner-split score regardless of cost overran its allotment: on the
    hippocampus in a 60-minute ladder it chose 350 trees of 79 leaves and took 772 s of 600 s.
    """
    ranked = sorted(trials, key=lambda t: t.value, reverse=True)
    if seconds_left is None:
        return ranked[0], "the best inner-split Dice (no time limit)"
    projected = [(t, rest_of_rung(t)) for t in ranked]
    for position, (trial, seconds) in enumerate(projected):
        if seconds is None or seconds <= seconds_left:
            about = "" if seconds is None else f": {seconds:.0f} s projected for the rest of the rung"
            return trial, (f"the best inner-split Dice{about}, {max(0.0, seconds_left):.0f} s left" if position == 0
                           else f"the best that fits{about}, {max(0.0, seconds_left):.0f} s left; better ones were "
                                f"projected to need {', '.join(f'{s:.0f} s' for _, s in projected[:position])}")
    cheapest, seconds = min(projected, key=lambda p: p[1])
    return cheapest, (f"none fits the {max(0.0, seconds_left):.0f} s left: the cheapest, {seconds:.0f} s projected "
                      f"for the rest of the rung")


def _config_from_trial(params: dict[str, Any]) -> dict[str, Any]:
    """The estimator's keyword arguments from a trial's parameters (the forest's size has its own name)."""
    if params["model"] == "lightgbm":
        return dict(params)
    renamed = {"rf_n_estimators": "n_estimators"}
    return {renamed.get(k, k): v for k, v in params.items()}
