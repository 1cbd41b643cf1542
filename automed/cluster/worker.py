"""``automed worker``: a process that runs trials of a fit's searches while the fit runs.

A worker sees the fit's run folder (the same path, e.g. on a shared file system) and its study
database. It reopens the fit's recipe, data and splits from the folder, waits for a search the
fit announces open (:func:`automed.models.search.optimize_within`), rebuilds that rung's objective
from the fit's saved plan (:meth:`automed.rungs.base.Rung.shared_search`) and runs trials of it
until the search has enough or its time is up; then it waits for the next one, and leaves when the
fit ends. Trials write their checkpoints into the rung's folder of the fit, where a retry (on any
process) finds them. The fit alone trains the final models and writes the report.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from automed.cluster.storage import StudyStorage, StorageError
from automed.errors import RunFolderError

__all__ = ["WorkerReport", "serve"]

log = logging.getLogger("automed")
START_WAIT_S = 600.0
"""How long a worker waits for the fit it serves to start, unless told otherwise."""


@dataclass
class WorkerReport:
    """What a worker did: trials run per rung, and why it left."""

    trials: dict[str, int] = field(default_factory=dict)
    reason: str = ""


def serve(run: str | Path, storage_url: str | None, wait_s: float | None = None, poll_s: float = 2.0) -> WorkerReport:
    """Run trials of the searches of the fit of ``run`` until that fit ends.

    Parameters
    ----------
    run : path
        The run folder the fit writes (the worker reads its hidden ``.RUN.partial`` folder).
    storage_url : str or None
        The fit's study database (None: ``$AUTOMED_STORAGE``).
    wait_s : float, optional
        Leave when no search has been open for this long (default: stay until the fit ends), or when
        no fit of ``run`` has started after this long (default: 10 minutes).

    Raises
    ------
    RunFolderError
        The run is finished, or no fit of it is in progress.
    StorageError
        The database is not the fit's, or cannot be reached.
    """
    from automed.ladder.staging import STATE, staging_folder
    from automed.recipe import Recipe
    from automed.run_record import read_run

    run = Path(run)
    staging = staging_folder(run)
    report = WorkerReport()
    idle_since = time.monotonic()
    while not (staging / STATE).is_file():  # the fit's set-up writes run.json, then state.json
        if (run / "report.json").is_file() and not staging.exists():
            raise RunFolderError(f"{run}: the fit has finished; there is nothing for a worker to do.")
        if _waited_too_long(idle_since, START_WAIT_S if wait_s is None else wait_s):
            raise RunFolderError(f"{run}: no fit of it is in progress (expected {staging}); start "
                                 f"`automed fit ... --out {run} --storage URL` first.")
        time.sleep(poll_s)
    record = read_run(staging)
    if record.study_storage is None:
        raise StorageError(f"{run}: this fit keeps its studies in its own SQLite file, which workers do not share; "
                           "fit with --storage postgresql://... to use workers.")
    storage = StudyStorage.for_run(storage_url, staging, record)
    storage.open()
    log.info("automed worker: joining the fit of %s (studies in %s)", run, storage.public_url)
    rungs = {spec.name for spec in Recipe.from_yaml(staging / "recipe.yaml").rungs}
    served: set[str] = set()
    while (staging / STATE).is_file():
        name = _open_search(storage, rungs - served)
        if name is None:
            if _waited_too_long(idle_since, wait_s):
                report.reason = f"no search was open for {wait_s:.0f} s"
                return report
            time.sleep(poll_s)
            continue
        ran = _run_trials(staging, storage, name)
        report.trials[name] = report.trials.get(name, 0) + ran
        served.add(name)
        idle_since = time.monotonic()
    report.reason = "the fit has ended"
    return report


def _waited_too_long(since: float, wait_s: float | None) -> bool:
    return wait_s is not None and time.monotonic() - since > wait_s


def _open_search(storage: StudyStorage, rungs: set[str]) -> str | None:
    """The one of ``rungs`` whose search of this run is open now, if any."""
    import optuna

    from automed.models.search import SEARCH

    prefix = f"{storage.run_id}:"
    for summary in optuna.get_all_study_summaries(storage.open(), include_best_trial=False):
        rung = summary.study_name.removeprefix(prefix)
        if summary.study_name.startswith(prefix) and rung in rungs and \
                (summary.user_attrs.get(SEARCH) or {}).get("open"):
            return rung
    return None


def _run_trials(staging: Path, storage: StudyStorage, rung_name: str) -> int:
    """Join the open search of ``rung_name``: rebuild its objective from the fit's saved plan and run
    trials until the search has enough; returns how many this worker ran."""
    from automed.ladder.contexts import context_factory
    from automed.ladder.reopen import reopen_run
    from automed.models.search import join_search, open_study
    from automed.rungs import rung_class
    from automed.rungs.records import saved_plan

    started = reopen_run(staging)
    spec = next(s for s in started.recipe.rungs if s.name == rung_name)
    rung = rung_class(spec.name, started.recipe.task)(spec.params)
    folder = staging / "rungs" / rung_name
    plan = saved_plan(folder)
    search = None if plan is None else rung.shared_search(
        context_factory(staging, started, storage, progress=False)(folder=folder, budget_s=None), plan)
    if search is None:
        log.info("automed worker: %s's trials are not shared; waiting for the next search", rung_name)
        return 0
    study = open_study(rung_name, storage, started.recipe.random_state, pruner=search.pruner, worker=True)
    log.info("automed worker: running trials of %s", rung_name)
    ran = join_search(study, search)
    log.info("automed worker: %s: ran %d trial(s)", rung_name, ran)
    return ran
