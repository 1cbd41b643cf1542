"""Where a run keeps its Optuna studies: SQLite in the run folder, or a database many workers share.

The URL comes from ``--storage`` or the ``AUTOMED_STORAGE`` environment variable. It may hold a
password; only :attr:`StudyStorage.public_url` (the password masked) is ever written or logged.
A PostgreSQL password is better kept out of the URL altogether, in ``PGPASSWORD`` or
``~/.pgpass``, which libpq reads.

Every process that runs trials records a heartbeat on its running trial; a trial whose heartbeat
stopped (its worker died or lost the database) is failed by the next process that looks, and
queued again once (:func:`retry_interrupted`), so a dead worker costs its running trial's time and
nothing else. Studies are named after the run (``<run id>:<rung>``), so two fits sharing one
database never share a study.
"""

from __future__ import annotations

import functools
import logging
import os
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from automed.errors import AutomedError

__all__ = ["ENVIRONMENT_VARIABLE", "HEARTBEAT_VARIABLE", "StudyStorage", "StorageError", "retry_interrupted"]

log = logging.getLogger("automed")
ENVIRONMENT_VARIABLE = "AUTOMED_STORAGE"
HEARTBEAT_VARIABLE = "AUTOMED_HEARTBEAT_S"
"""Seconds between a running trial's heartbeats (default 10); a trial is taken as dead after 4 of them."""
RUN_FOLDER_DATABASE = "optuna.db"
MAX_RETRIES = 2
"""How often an interrupted trial is queued again before it is left failed."""
_DRIVERS = {"postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg"}
"""Bare scheme -> the SQLAlchemy driver automed installs (psycopg 3; SQLAlchemy's default is psycopg2)."""


class StorageError(AutomedError):
    """The study database cannot be used: unknown scheme, unreachable, or not the run's."""


@dataclass(frozen=True)
class StudyStorage:
    """The database of a run's studies.

    Attributes
    ----------
    url : str
        SQLAlchemy URL, possibly with a password: never written or logged.
    run_id : str or None
        The run's identity, the prefix of its study names (None: a run from before it had one).
    shared : bool
        Whether other processes (``automed worker``) may join the run's searches: a database
        given by the user, not the run folder's own SQLite file.
    heartbeat_s : int
        Seconds between a running trial's heartbeats.
    """

    url: str
    run_id: str | None
    shared: bool
    heartbeat_s: int = 10

    @classmethod
    def resolve(cls, given: str | None, folder: Path, run_id: str | None) -> StudyStorage:
        """The storage named by ``given`` (``--storage``), else by ``$AUTOMED_STORAGE``, else the
        SQLite file in the run folder ``folder``."""
        heartbeat = int(os.environ.get(HEARTBEAT_VARIABLE) or 10)
        given = given or os.environ.get(ENVIRONMENT_VARIABLE) or None
        if given is None:
            return cls(f"sqlite:///{folder / RUN_FOLDER_DATABASE}", run_id, False, heartbeat)
        return cls(_with_driver(given), run_id, True, heartbeat)

    @classmethod
    def for_run(cls, given: str | None, folder: Path, record: Any) -> StudyStorage:
        """The storage of the run whose record (``run.json``) is ``record``, fitted in ``folder``.

        Raises
        ------
        StorageError
            If the run keeps its studies in a shared database and ``given`` (or ``$AUTOMED_STORAGE``)
            names none, or another one. A run that keeps them in its own SQLite file keeps doing so.
        """
        storage = cls.resolve(given, folder, record.run_id)
        if record.study_storage is None:  # the fit started with its own SQLite file, and keeps it
            if storage.shared:
                log.warning("%s: this fit keeps its studies in its own %s; %s is not used", folder,
                            RUN_FOLDER_DATABASE, storage.public_url)
            return replace(storage, url=f"sqlite:///{folder / RUN_FOLDER_DATABASE}", shared=False)
        if not storage.shared:
            raise StorageError(f"{folder}: this fit keeps its studies in {record.study_storage}; pass that URL as "
                               f"--storage (or in ${ENVIRONMENT_VARIABLE}).")
        if storage.public_url != record.study_storage:
            raise StorageError(f"{storage.public_url}: not the database of this fit, which keeps its studies in "
                               f"{record.study_storage}.")
        return storage

    @property
    def public_url(self) -> str:
        """The URL with its password masked: what run.json, logs and the report show."""
        from sqlalchemy.engine import make_url

        return make_url(self.url).render_as_string(hide_password=True)

    def variant(self, key: str, folder: Path) -> StudyStorage:
        """The storage of a refit's studies (a learning-curve fraction, a left-out site): in a shared
        database, study names that also carry ``key``; else its own SQLite file in the run folder ``folder``."""
        if self.shared:
            return replace(self, run_id=f"{self.run_id}:{key}")
        return replace(self, url=f"sqlite:///{folder / f'optuna-{key}.db'}")

    def study_name(self, rung: str) -> str:
        """The name of ``rung``'s study: the run's identity and the rung."""
        return rung if self.run_id is None else f"{self.run_id}:{rung}"

    def open(self) -> Any:
        """An Optuna storage on this database, with heartbeats and interrupted trials queued again.

        Raises
        ------
        StorageError
            If the database cannot be reached or its driver is missing; the message has no password.
        """
        from sqlalchemy.exc import SQLAlchemyError

        try:
            # a shared database keeps one connection pool per process; the run folder's SQLite file is opened
            # afresh, since a pooled connection would outlive the file when --overwrite removes it
            opener = _rdb_storage if self.shared else _rdb_storage.__wrapped__
            return opener(self.url, self.shared, self.heartbeat_s)
        except (SQLAlchemyError, ImportError, ValueError) as exc:
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise StorageError(f"{self.public_url}: cannot open the study database ({reason}). Check that the server "
                               "runs and that the URL, user and database are right (a password goes in PGPASSWORD "
                               "or ~/.pgpass rather than the URL).") from None

    def run_studies(self) -> list[str]:
        """The names of this run's studies in the database."""
        import optuna

        prefix = f"{self.run_id}:"
        return [s.study_name for s in optuna.get_all_study_summaries(self.open(), include_best_trial=False)
                if s.study_name.startswith(prefix)]


@functools.lru_cache(maxsize=8)
def _rdb_storage(url: str, shared: bool, heartbeat_s: int) -> Any:
    """One Optuna storage (and connection pool) per database in this process, however often it is opened."""
    import optuna

    with warnings.catch_warnings():  # heartbeats are marked experimental since Optuna 2.9
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True} if shared else None,
                                          heartbeat_interval=heartbeat_s, grace_period=4 * heartbeat_s,
                                          heartbeat_stale_trial_callback=retry_interrupted)


def retry_interrupted(study: Any, trial: Any) -> None:
    """Heartbeat-stale callback: queue an interrupted trial's parameters again, at most
    :data:`MAX_RETRIES` times, with the user attribute ``continues`` naming the first trial of the
    series (where a rung keeps its checkpoint, so the retry continues from it).

    Optuna's ``RetryHeartbeatStaleTrialCallback`` keeps the series in system attributes that the
    objective cannot read without a private storage call; this one keeps it in user attributes.
    """
    retries = trial.user_attrs.get("retries", 0)
    first = trial.user_attrs.get("continues", trial.number)
    if retries >= MAX_RETRIES:
        log.warning("%s: trial %d was interrupted %d times; it is not run again", study.study_name, first, retries + 1)
        return
    study.enqueue_trial(trial.params, user_attrs={"continues": first, "retries": retries + 1},
                        skip_if_exists=False)
    log.info("%s: trial %d was interrupted; it is queued again (a rung that keeps trial checkpoints continues "
             "from its last one)", study.study_name, trial.number)


def _with_driver(url: str) -> str:
    """``url`` with the driver automed installs for its scheme; an unknown scheme is refused."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise StorageError(f"{url!r}: not a database URL; expected e.g. postgresql://USER@HOST/DATABASE.")
    base = scheme.split("+")[0]
    if base not in ("postgresql", "postgres", "sqlite"):
        raise StorageError(f"{scheme}://...: unknown database; use postgresql://USER@HOST/DATABASE "
                           "(or sqlite:///PATH on one machine).")
    return f"{_DRIVERS.get(scheme, scheme)}://{rest}"
