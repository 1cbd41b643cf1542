"""A fit killed with SIGKILL during the classical search: no process outlives it, and
``--resume`` keeps every finished trial."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import optuna
import pytest

from conftest import make_msd
from processes import tagged as _tagged, wait_until as _wait_until

AUTOMED = [str(Path(sys.executable).with_name("automed"))]  # the console script of this environment


def _complete_trials(db: Path) -> int:
    try:
        with sqlite3.connect(db) as connection:
            return connection.execute("SELECT COUNT(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0]
    except sqlite3.Error:  # not created yet
        return 0


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc to find the workers")
def test_sigkill_during_classical_search_then_resume(tmp_path):
    data = make_msd(tmp_path / "data", n_cases=10)
    out = tmp_path / "run"
    tag = uuid.uuid4().hex  # inherited by every process the fit starts
    env = {**os.environ, "AUTOMED_FAULT_TEST": tag}
    fit = subprocess.Popen(AUTOMED + ["fit", str(data), "--out", str(out), "--rungs", "classical", "--folds", "2",
                                      "--jobs", "2", "--quiet"], env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    db = tmp_path / ".run.partial" / "optuna.db"
    try:
        assert _wait_until(lambda: _complete_trials(db) >= 2 or fit.poll() is not None, 120)
        assert fit.poll() is None, "the fit ended before two trials were done; nothing was interrupted"
        assert len(_tagged(tag)) > 1  # the fit and its feature workers
    finally:
        fit.send_signal(signal.SIGKILL)
        fit.wait()
    assert _wait_until(lambda: not _tagged(tag), 3.0), _tagged(tag)

    storage = f"sqlite:///{db}"
    name = f"{json.loads((db.parent / 'run.json').read_text())['run_id']}:classical"  # studies carry the run's identity
    killed = optuna.load_study(study_name=name, storage=storage).trials
    before = {t.number: (t.params, t.value) for t in killed if t.state == optuna.trial.TrialState.COMPLETE}
    running = [t.number for t in killed if t.state == optuna.trial.TrialState.RUNNING]
    assert len(before) >= 2

    resumed = subprocess.run(AUTOMED + ["fit", "--resume", str(out), "--quiet"], env=env, capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert _wait_until(lambda: not _tagged(tag), 3.0), _tagged(tag)
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{out / 'optuna.db'}")
    after = {t.number: (t.params, t.value) for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE}
    assert {n: after[n] for n in before} == before  # every trial finished before the kill is kept
    assert len(after) == 6  # and only the rest of the default 6 were run
    log = (out / "automed.log").read_text()
    assert "finished search trials are kept" in log
    for number in running:
        assert f"{name}: trial {number} was interrupted; it is queued again" in log
    assert not (out / "state.json").exists()
