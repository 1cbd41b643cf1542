"""Many processes on one fit: searches shared through a real PostgreSQL server, features on a real Dask cluster."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import optuna
import pytest

from conftest import make_msd
from postgres_server import PASSWORD
from processes import tagged, wait_until

AUTOMED = [str(Path(sys.executable).with_name("automed"))]
RECIPE = """task: segmentation
n_folds: 2
n_jobs: 1
rungs:
  - name: unet2d
    params: {n_trials: 6, max_epochs: 9, min_epochs: 2, iterations: 60, widths: [8], depths: [3], tta: false,
             augmentations: [light]}
"""


def _trials(url: str, run: Path, rung: str) -> list[optuna.trial.FrozenTrial]:
    """The trials of ``rung``'s study of the fit in ``run`` (one storage, so one connection pool, per database)."""
    from automed.cluster.storage import StudyStorage

    storage = StudyStorage.resolve(url, run, json.loads((run / "run.json").read_text())["run_id"])
    return optuna.load_study(study_name=storage.study_name(rung), storage=storage.open()).trials


def _running_on(url: str, staging: Path, pid: int) -> bool:
    """Whether the process ``pid`` runs a trial of the fit being built in ``staging``, past its first epoch."""
    if not (staging / "run.json").is_file():
        return False
    try:
        trials = _trials(url, staging, "unet2d")
    except (KeyError, ValueError):  # the study is not created yet, or run.json is being written
        return False
    return any(t.state == optuna.trial.TrialState.RUNNING and (t.user_attrs.get("worker") or {}).get("pid") == pid
               and t.intermediate_values for t in trials)


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc to find the processes")
def test_two_workers_share_a_search_and_a_killed_worker_loses_nothing(postgres, tmp_path):
    """The fit and two `automed worker`s run one search against a real server; one worker is SIGKILLed in the middle
    of a trial. Every finished trial is kept, the killed trial is run again from its checkpoint by another process,
    the fit chooses the best finished trial (as one process would from the same trials), no process is left behind,
    and the password in the URL lands in no file."""
    postgres.create_database("workers")
    url = postgres.url("workers", password=True)
    data = make_msd(tmp_path / "data", n_cases=10, shape=(16, 24, 24))
    (tmp_path / "recipe.yaml").write_text(RECIPE)
    run, staging = tmp_path / "run", tmp_path / ".run.partial"
    tag = uuid.uuid4().hex
    env = {**os.environ, "AUTOMED_FAULT_TEST": tag, "OMP_NUM_THREADS": "1", "AUTOMED_HEARTBEAT_S": "1"}
    logs = {name: (tmp_path / f"{name}.log").open("w") for name in ("fit", "worker1", "worker2")}
    fit = subprocess.Popen(AUTOMED + ["fit", str(data), "--recipe", str(tmp_path / "recipe.yaml"), "--out", str(run),
                                      "--storage", url, "--quiet"], env=env, stdout=logs["fit"], stderr=subprocess.STDOUT)
    workers = [subprocess.Popen(AUTOMED + ["worker", str(run)], env={**env, "AUTOMED_STORAGE": url},
                                stdout=logs[f"worker{i}"], stderr=subprocess.STDOUT) for i in (1, 2)]
    try:
        assert wait_until(lambda: _running_on(url, staging, workers[0].pid) or fit.poll() is not None, 240)
        assert fit.poll() is None, "the fit ended before the first worker ran a trial"
        workers[0].send_signal(signal.SIGKILL)
        assert fit.wait(timeout=300) == 0, (tmp_path / "fit.log").read_text()[-3000:]
        assert workers[1].wait(timeout=60) == 0, (tmp_path / "worker2.log").read_text()[-3000:]
    finally:
        for process in (fit, *workers):
            if process.poll() is None:
                process.kill()
                process.wait()
    assert wait_until(lambda: not tagged(tag), 5.0), tagged(tag)  # no orphan: every process ended
    assert "the fit has ended" in (tmp_path / "worker2.log").read_text()

    trials = _trials(url, run, "unet2d")
    killed = [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
    finished = [t for t in trials if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]
    assert len(killed) == 1 and killed[0].user_attrs["worker"]["pid"] == workers[0].pid
    assert any(t.user_attrs.get("continues") == killed[0].number for t in finished)  # run again from its checkpoint
    assert len(finished) == 6
    assert {t.user_attrs["worker"]["pid"] for t in finished} >= {fit.pid, workers[1].pid}  # the search was shared
    search = json.loads((run / "rungs" / "unet2d" / "result.json").read_text())["details"]["search"]
    assert search["n_trials"] == 6 and sum(search["workers"].values()) == 6
    best = max((t for t in finished if t.state == optuna.trial.TrialState.COMPLETE), key=lambda t: t.value)
    single = optuna.create_study(direction="maximize")  # one process given the same trials chooses the same
    single.add_trials(finished)
    assert single.best_trial.params == best.params
    assert {k: search["best_params"][k] for k in best.params} == best.params
    assert search["best_value"] == pytest.approx(best.value)

    record = json.loads((run / "run.json").read_text())
    assert record["study_storage"] == f"postgresql+psycopg://automed:***@127.0.0.1:{postgres.port}/workers"
    written = [p for p in [*run.rglob("*"), *tmp_path.glob("*.log")] if p.is_file()]
    assert not [p for p in written if PASSWORD.encode() in p.read_bytes()]


def test_a_worker_is_told_why_it_has_nothing_to_do(postgres, tmp_path, fitted_run):
    postgres.create_database("other")
    url = postgres.url("other")

    def worker(run: Path, storage: str | None) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if k != "AUTOMED_STORAGE"}
        return subprocess.run(AUTOMED + ["worker", str(run), *(["--storage", storage] if storage else []), "--quiet",
                                         "--wait", "2s"],
                              capture_output=True, text=True, timeout=60, env=env)

    finished = worker(fitted_run, url)
    assert finished.returncode == 1 and "the fit has finished" in finished.stderr
    nothing = worker(tmp_path / "never", url)
    assert nothing.returncode == 1 and "no fit of it is in progress" in nothing.stderr
    # a fit in progress that keeps its studies in its own SQLite file, or in another database
    staging = tmp_path / ".busy.partial"
    staging.mkdir()
    record = json.loads((fitted_run / "run.json").read_text())
    (staging / "state.json").write_text('{"spent_s": 0}')
    (staging / "run.json").write_text(json.dumps({**record, "study_storage": None}))
    own = worker(tmp_path / "busy", url)
    assert own.returncode == 1 and "own SQLite file" in own.stderr
    (staging / "run.json").write_text(json.dumps({**record, "study_storage": "postgresql+psycopg://x@elsewhere/db"}))
    wrong = worker(tmp_path / "busy", url)
    assert wrong.returncode == 1 and "not the database of this fit" in wrong.stderr
    assert "postgresql+psycopg://x@elsewhere/db" in wrong.stderr


def test_an_unreachable_database_is_refused_before_anything_is_fitted(tmp_path, msd):
    from postgres_server import _free_port

    url = f"postgresql://automed:{PASSWORD}@127.0.0.1:{_free_port()}/automed"
    done = subprocess.run(AUTOMED + ["fit", str(msd), "--out", str(tmp_path / "run"), "--rungs", "classical",
                                     "--storage", url, "--quiet"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "cannot open the study database" in done.stderr and "automed:***@127.0.0.1" in done.stderr
    assert PASSWORD not in done.stderr
    assert not (tmp_path / "run").exists() and not (tmp_path / ".run.partial").exists()


def test_storage_urls():
    from automed.cluster.storage import StorageError, StudyStorage

    storage = StudyStorage.resolve("postgresql://me:pw@db.host:5432/automed", Path("/tmp/x"), "abc")
    assert storage.shared and storage.url.startswith("postgresql+psycopg://")
    assert storage.public_url == "postgresql+psycopg://me:***@db.host:5432/automed"
    assert storage.study_name("unet2d") == "abc:unet2d"
    assert storage.variant("fractions-0.25", Path("/tmp/x")).study_name("unet2d") == "abc:fractions-0.25:unet2d"
    own = StudyStorage.resolve(None, Path("/tmp/x"), "abc")
    assert not own.shared and own.url == "sqlite:////tmp/x/optuna.db"
    assert own.variant("sites-0", Path("/tmp/x")).url == "sqlite:////tmp/x/optuna-sites-0.db"
    for bad in ("db.host/automed", "mongodb://db.host/automed"):
        with pytest.raises(StorageError, match="postgresql://USER@HOST/DATABASE"):
            StudyStorage.resolve(bad, Path("/tmp/x"), "abc")


def test_dask_features_match_the_local_path(tmp_path, msd):
    """The classical rung's per-case features, sampled as tasks on a real Dask LocalCluster (two worker processes,
    each reading its cases), equal those of local processes."""
    import automed
    from automed.cluster.case_map import dask_client
    from automed.cluster.storage import StudyStorage
    from automed.rungs import rung_class
    from automed.rungs.base import FitContext
    from automed.tasks import get_task

    prepared = get_task("segmentation").prepare(automed.Recipe(n_folds=2, n_jobs=1), msd, progress=False)
    rung = rung_class("classical", "segmentation")()

    def sampled(cluster):
        context = FitContext(prepared.dataset, prepared.fingerprint, prepared.splits["folds"], tmp_path / "rung", 0, 2,
                             None, StudyStorage.resolve(None, tmp_path, None), progress=False, cluster=cluster)
        return rung.sample_cases(context, rung.plan(context), list(prepared.dataset.cases))

    local = sampled(None)
    with dask_client("local", 2) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        remote = sampled(client)
    assert list(remote) == list(local)
    for case_id, data in local.items():
        np.testing.assert_array_equal(remote[case_id].X, data.X)
        np.testing.assert_array_equal(remote[case_id].y, data.y)
