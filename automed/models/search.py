"""Optuna helpers shared by the rungs' searches: one way to open, resume, run and join a study.

A search may be shared: the fit opens it (:func:`optimize_within`) and ``automed worker``
processes join it (:func:`join_search`), each running trials of the same study. The study's
user attribute ``search`` says whether it is open, how many finished trials it wants and by when;
every process stops starting trials once the trials finished and running elsewhere reach that
number, and the fit waits for the others' running trials before it chooses.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable

log = logging.getLogger("automed")

__all__ = ["SearchObjective", "finished_trials", "join_search", "open_study", "optimize_within", "search_is_open",
           "workers_of"]

SEARCH = "search"
"""The study user attribute a shared search is announced in: ``{"open", "n_trials", "deadline"}``."""


@dataclass(frozen=True)
class SearchObjective:
    """What a process needs to run trials of a rung's study.

    Attributes
    ----------
    objective : callable
        ``objective(trial) -> float``, maximised.
    pruner : optuna.pruners.BasePruner or None
        The study's pruner (a pruner lives in each process, its trials' values in the database).
    callbacks : tuple of callable
        Called after each trial the process runs (e.g. to remove a pruned trial's checkpoint).
    """

    objective: Callable[[Any], float]
    pruner: Any = None
    callbacks: tuple[Callable[[Any, Any], None], ...] = ()


def open_study(rung: str, storage: Any, random_state: int, default: dict[str, Any] | None = None,
               pruner: Any = None, about: dict[str, str] | None = None, worker: bool = False) -> Any:
    """Create the study of ``rung`` in ``storage`` (a :class:`~automed.cluster.storage.StudyStorage`),
    or load it with its finished trials kept.

    ``about`` describes the study for optuna-dashboard and later readers: its ``metric`` (what the
    objective measures, maximised) becomes the study's metric name, and every entry (``rung``,
    ``task``, ``metric``, ``measured_on``) a study user attribute.

    A trial left running by a process that has died is failed and queued again (with the user
    attribute ``continues``: the number of the trial it continues, so the rung finds its
    checkpoint): at once where the process ran on this host, else once its heartbeat is stale.
    ``default`` is queued as the first trial of a new study. A ``worker`` samples with its own
    seed, so two processes do not suggest the same parameters.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    seed = random_state + 1 + os.getpid() if worker else random_state
    study = optuna.create_study(study_name=storage.study_name(rung), storage=storage.open(), direction="maximize",
                                load_if_exists=True, pruner=pruner,
                                sampler=optuna.samplers.TPESampler(seed=seed, constant_liar=True))
    if about and not worker:
        with warnings.catch_warnings():  # set_metric_names is marked experimental since Optuna 3.2
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([about["metric"]])
        for key, value in {**about, "direction": "maximize"}.items():
            study.set_user_attr(key, value)
    _fail_interrupted(study, shared=storage.shared)
    if default is not None and not study.trials:
        study.enqueue_trial(default)
    return study


def finished_trials(study: Any) -> list[Any]:
    """The study's complete and pruned trials."""
    from optuna.trial import TrialState

    return [t for t in study.get_trials(deepcopy=False) if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]


def optimize_within(study: Any, search: SearchObjective, n_trials: int, timeout_s: float | None,
                    progress: bool = False) -> None:
    """Run trials until the study holds ``n_trials`` finished ones (those of an interrupted fit and of
    workers count), starting no trial the last one says cannot finish by ``timeout_s``; then wait
    for trials other processes still run, running any that a dead one left queued.

    Optuna's own ``timeout`` only stops *starting* trials after the deadline, so a slow trial
    begun just before it overruns by a whole trial (seen: a 115 s search taking 6 min).
    """
    deadline = None if timeout_s is None else time.time() + timeout_s
    study.set_user_attr(SEARCH, {"open": True, "n_trials": n_trials, "deadline": deadline})
    try:
        _take_part(study, search, n_trials, deadline, progress)
        _wait_for_others(study, search, n_trials, deadline, progress)
    finally:
        study.set_user_attr(SEARCH, {"open": False, "n_trials": n_trials, "deadline": deadline})


def join_search(study: Any, search: SearchObjective) -> int:
    """Run trials of the open search ``study`` (as announced by :func:`optimize_within`) until it
    has enough, its deadline is near or it closes; returns how many this process ran."""
    announced = study.user_attrs.get(SEARCH) or {}
    if not announced.get("open"):
        return 0
    before = _own_trials(study)
    _take_part(study, search, announced["n_trials"], announced["deadline"], False, until_closed=True)
    return _own_trials(study) - before


def search_is_open(study: Any) -> bool:
    """Whether ``study``'s search is announced open (a worker may join it)."""
    return bool((study.user_attrs.get(SEARCH) or {}).get("open"))


def _take_part(study: Any, search: SearchObjective, n_trials: int, deadline: float | None, progress: bool,
               until_closed: bool = False) -> None:
    """Run trials of ``study`` in this process while it wants more and there is time."""
    if _wants_no_more(study, n_trials) or (deadline is not None and time.time() >= deadline):
        return

    def stop(study: Any, trial: Any) -> None:
        overrun = deadline is not None and trial.duration is not None and \
            time.time() + trial.duration.total_seconds() > deadline
        closed = until_closed and not search_is_open(study)
        if overrun or closed or _wants_no_more(study, n_trials):
            study.stop()

    me = _me()

    def objective(trial: Any) -> float:
        trial.set_user_attr("worker", me)  # a process on this host that finds it dead retries the trial at once
        return search.objective(trial)

    study.optimize(objective, n_trials=None, timeout=None if deadline is None else max(1.0, deadline - time.time()),
                   show_progress_bar=progress, callbacks=[*search.callbacks, stop], catch=())


def _wait_for_others(study: Any, search: SearchObjective, n_trials: int, deadline: float | None,
                     progress: bool) -> None:
    """Wait until no other process runs a trial of ``study``; a trial a dead one left queued is run here."""
    import optuna
    from optuna.trial import TrialState

    while True:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        _fail_interrupted(study, shared=True)
        states = [t.state for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING))]
        if TrialState.WAITING in states and not _wants_no_more(study, n_trials) and \
                (deadline is None or time.time() < deadline):
            _take_part(study, search, n_trials, deadline, progress)
            continue
        if TrialState.RUNNING not in states:
            return
        time.sleep(1.0)


def _wants_no_more(study: Any, n_trials: int) -> bool:
    """Whether the finished trials and those running now reach ``n_trials``."""
    from optuna.trial import TrialState

    states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    return len(study.get_trials(deepcopy=False, states=states)) >= n_trials


def _fail_interrupted(study: Any, shared: bool) -> None:
    """Fail, and queue again, the running trials whose process is known dead: one that ran on this host
    and has ended. In a study no other process shares (the run folder's own database, which only the fit
    holding the run's lock writes), every running trial is an interrupted fit's; in a shared one, a trial
    not yet marked with its process (it has just started) is left to its heartbeat."""
    import optuna
    from optuna.trial import TrialState

    from automed.cluster.storage import retry_interrupted
    from automed.ladder.lock import holder_alive

    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = trial.user_attrs.get("worker")
        if shared and (owner is None or owner.get("host") != socket.gethostname() or holder_alive(owner)):
            continue  # alive, just started, or on another host: its heartbeat tells
        try:
            study.tell(trial.number, state=TrialState.FAIL)
        except (optuna.exceptions.UpdateFinishedTrialError, ValueError, RuntimeError):
            continue  # another process failed it first
        retry_interrupted(study, trial)


def workers_of(trials: list[Any]) -> dict[str, int]:
    """How many of ``trials`` each process ran (``host:pid``)."""
    counts: dict[str, int] = {}
    for trial in trials:
        owner = trial.user_attrs.get("worker") or {}
        key = f"{owner.get('host', '?')}:{owner.get('pid', '?')}"
        counts[key] = counts.get(key, 0) + 1
    return counts


def _own_trials(study: Any) -> int:
    """How many finished trials of ``study`` this process ran."""
    me = _me()
    return sum(t.user_attrs.get("worker") == me for t in finished_trials(study))


def _me() -> dict[str, Any]:
    import psutil

    return {"host": socket.gethostname(), "pid": os.getpid(), "create_time": psutil.Process().create_time()}
