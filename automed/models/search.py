"""Optuna helpers shared by the rungs' searches: one way to open, resume and run a study."""

from __future__ import annotations

import logging
import time
import warnings
from typing import Any, Callable

log = logging.getLogger("automed")

__all__ = ["finished_trials", "open_study", "optimize_within"]


def open_study(name: str, storage: str, random_state: int, default: dict[str, Any] | None = None,
               pruner: Any = None, continue_interrupted: bool = False, about: dict[str, str] | None = None) -> Any:
    """Create the study ``name`` in ``storage``, or load it with its finished trials kept.

    ``about`` describes the study for optuna-dashboard and later readers: its ``metric`` (what the
    objective measures, maximised) becomes the study's metric name, and every entry (``rung``,
    ``task``, ``metric``, ``measured_on``) a study user attribute.

    A trial left running by an interrupted fit is marked failed; with ``continue_interrupted``
    its parameters are queued again (with the user attribute ``continues``: its number, so the
    rung can find its checkpoint). ``default`` is queued as the first trial of a new study.
    """
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize", load_if_exists=True,
                                sampler=optuna.samplers.TPESampler(seed=random_state), pruner=pruner)
    if about:
        with warnings.catch_warnings():  # set_metric_names is marked experimental since Optuna 3.2
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([about["metric"]])
        for key, value in {**about, "direction": "maximize"}.items():
            study.set_user_attr(key, value)
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(trial.number, state=TrialState.FAIL)
        if continue_interrupted:
            study.enqueue_trial(trial.params, user_attrs={"continues": trial.number})
        log.info("%s: trial %d was interrupted; %s", name, trial.number,
                 "it continues from its checkpoint" if continue_interrupted else "it is not counted")
    if default is not None and not study.trials:
        study.enqueue_trial(default)
    return study


def finished_trials(study: Any) -> list[Any]:
    """The study's complete and pruned trials."""
    from optuna.trial import TrialState

    return [t for t in study.get_trials(deepcopy=False) if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]


def optimize_within(study: Any, objective: Callable[[Any], float], n_trials: int, timeout_s: float | None,
                    progress: bool = False, callbacks: list[Any] | None = None) -> None:
    """Run trials until the study holds ``n_trials`` finished ones (those of an interrupted fit
    count), starting no trial the last one says cannot finish by ``timeout_s``.

    Optuna's own ``timeout`` only stops *starting* trials after the deadline, so a slow trial
    begun just before it overruns by a whole trial (seen: a 115 s search taking 6 min).
    """
    remaining = n_trials - len(finished_trials(study))
    if remaining <= 0:
        return
    started = time.monotonic()

    def stop_before_overrun(study: Any, trial: Any) -> None:
        if trial.duration is not None and time.monotonic() - started + trial.duration.total_seconds() > timeout_s:
            study.stop()

    guard = [] if timeout_s is None else [stop_before_overrun]
    study.optimize(objective, n_trials=remaining, timeout=timeout_s, show_progress_bar=progress,
                   callbacks=[*(callbacks or []), *guard], catch=())
