"""A run folder is fitted by one process at a time, is replaced only where automed wrote it, is resumed only
on the data it started on, is replayed only from a sound plan, and its weights are checked when loaded."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import automed
from automed.cli import main
from automed.errors import RunFolderError
from automed.ladder.lock import holder_alive, lock_path, refuse_if_locked, run_lock
from cli_checks import copy_run, fails
from conftest import FAST_PARAMS, make_msd

AUTOMED = [str(Path(sys.executable).with_name("automed"))]  # the console script of this environment
HOLDER = """
import sys, time
from automed.ladder.lock import run_lock
with run_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(300)
"""


@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> Path:
    """A fitted classical run of a tiny dataset, for the tests that change it (each on a copy)."""
    root = tmp_path_factory.mktemp("small_run")
    data = make_msd(root / "data", n_cases=6, shape=(10, 12, 10))
    recipe = automed.Recipe(task="segmentation", n_folds=2, n_jobs=1, rungs=[{"name": "classical", "params": FAST_PARAMS}])
    automed.fit(recipe, data, root / "run", progress=False)
    return root / "run"


def _copy(run: Path, tmp_path: Path) -> Path:
    return copy_run(run, tmp_path / "run")


# -- the lock: one process fits a run at a time -------------------------------------------------


@pytest.fixture
def holder(tmp_path):
    """Another process that holds the lock of ``tmp_path/run``, as a running fit does; SIGKILLed at the end."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "run")], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    yield proc
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_a_second_fit_resume_or_overwrite_of_a_run_being_fitted_is_refused(small_run, tmp_path, holder):
    out = _copy(small_run, tmp_path)
    staging = tmp_path / ".run.partial"
    staging.mkdir()
    (staging / "state.json").write_text('{"spent_s": 1.0}')
    busy = rf"{out}: is being fitted by process {holder.pid} \(.*started .* on host .*\); wait for it to end or stop it\."
    resumed = subprocess.run(AUTOMED + ["fit", "--resume", str(out), "--quiet"], capture_output=True, text=True)
    assert resumed.returncode == 1 and "Traceback" not in resumed.stderr, resumed.stderr
    assert len(resumed.stderr.strip().splitlines()) == 1 and "is being fitted by process" in resumed.stderr
    data = json.loads((out / "run.json").read_text())["data"]
    fails(["fit", data, "--out", str(out), "--overwrite", "--rungs", "classical"], busy, out, staging)
    fails(["fit", "--replay", str(small_run), "--out", str(out), "--overwrite"], busy, out, staging)
    fails(["predict", str(out), data, "--out", str(tmp_path / "pred")], busy, out)
    fails(["export", str(out), "--out", str(tmp_path / "exp"), "--format", "joblib"], busy, out)
    fails(["fit", "--replay", str(out), "--out", str(tmp_path / "again")], busy, out)
    assert not (tmp_path / "pred").exists() and not (tmp_path / "exp").exists() and not (tmp_path / "again").exists()


@pytest.mark.slow  # an end-to-end fit: `make test-all` runs it
def test_the_lock_of_a_killed_fit_is_stale_and_the_next_fit_proceeds(small_run, tmp_path, holder):
    out = _copy(small_run, tmp_path)
    with pytest.raises(RunFolderError, match="is being fitted by process"):
        with run_lock(out):
            pass
    recorded = json.loads(lock_path(out).read_text())
    assert recorded["pid"] == holder.pid and holder_alive(recorded)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert not holder_alive(recorded)  # the file is left behind, but the kernel released the lock
    refuse_if_locked(out)
    data = json.loads((out / "run.json").read_text())["data"]
    recipe = tmp_path / "recipe.yaml"
    recipe.write_bytes((out / "recipe.yaml").read_bytes())
    result = CliRunner().invoke(main, ["fit", data, "--out", str(out), "--overwrite", "--recipe", str(recipe), "--quiet"])
    assert result.exit_code == 0, result.output
    assert not lock_path(out).exists()  # released and removed at the end of the fit


def test_a_reused_pid_is_not_taken_for_the_holder():
    import socket

    me = {"pid": os.getpid(), "host": socket.gethostname(), "create_time": 12.0}  # this pid, started long ago
    assert not holder_alive(me)
    assert not holder_alive({"pid": 2**22 + 7, "host": socket.gethostname(), "create_time": time.time()})
    assert holder_alive({"pid": 1, "host": "another-host", "create_time": 0})  # cannot be checked from here


def test_a_forked_worker_does_not_keep_the_lock(tmp_path):
    out = tmp_path / "run"
    with run_lock(out):
        pid = os.fork()
        if pid == 0:  # the child: a worker that outlives its parent's fit
            time.sleep(3)
            os._exit(0)
    try:
        with run_lock(out):
            pass
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


# -- --overwrite replaces only what automed wrote ------------------------------------------------


@pytest.mark.parametrize("mine", ["notes.txt", "rungs/classical/my_analysis.ipynb"])
def test_overwrite_refuses_a_run_folder_holding_a_users_file(small_run, tmp_path, mine):
    out = _copy(small_run, tmp_path)
    (out / mine).write_text("my notes")
    data = json.loads((out / "run.json").read_text())["data"]
    fails(["fit", data, "--out", str(out), "--overwrite", "--rungs", "classical"],
          rf"{out / mine}: not written by automed, so --overwrite will not replace the run folder", out)
    assert (out / mine).read_text() == "my notes"


def test_an_older_run_without_the_file_list_is_judged_by_its_top_level_names(small_run, tmp_path):
    from automed.ladder.staging import MANIFEST, foreign_files

    out = _copy(small_run, tmp_path)
    assert foreign_files(out) == []
    (out / MANIFEST).unlink()
    assert foreign_files(out) == []
    (out / "notes.txt").write_text("x")
    assert foreign_files(out) == ["notes.txt"]
    (out / MANIFEST).write_text("{not json")  # damaged: every file counts as the user's
    assert "recipe.yaml" in foreign_files(out)


def test_a_file_added_while_the_new_fit_ran_is_carried_over(small_run, tmp_path):
    from automed.ladder.staging import _swap_into_place, foreign_files

    out = _copy(small_run, tmp_path)
    new = copy_run(small_run, tmp_path / ".run.partial")
    (out / "notes.txt").write_text("added during the fit")
    (out / "rungs" / "classical" / "mine.md").write_text("also mine")
    _swap_into_place(new, out)
    assert (out / "notes.txt").read_text() == "added during the fit"
    assert foreign_files(out) == ["notes.txt", "rungs/classical/mine.md"]
    assert not [p for p in tmp_path.iterdir() if ".old-" in p.name]  # nothing collided: the old run is gone
    newer = copy_run(small_run, tmp_path / ".run.partial")
    (newer / "notes.txt").write_text("the new run has a file of that name")
    _swap_into_place(newer, out)
    kept = [p for p in tmp_path.iterdir() if ".old-" in p.name]
    assert len(kept) == 1 and (kept[0] / "notes.txt").read_text() == "added during the fit"


# -- a replay: never over its source, and only of a sound plan, checked before anything trains -------


def test_a_replay_never_writes_over_or_inside_the_run_it_replays(small_run, tmp_path):
    out = _copy(small_run, tmp_path)
    fails(["fit", "--replay", str(out), "--out", str(out), "--overwrite"], r"--out is the run it replays", out)
    fails(["fit", "--replay", str(out), "--out", str(out / "again"), "--overwrite"],
          r"--out lies inside the run it replays", out)
    assert (out / "optuna.db").is_file() and (out / "automed.log").is_file()


def test_a_replay_onto_data_of_other_dimensions_is_refused_before_training(small_run, tmp_path):
    import numpy as np

    from conftest import blob_case, write

    data, rng, training = tmp_path / "msd2d", np.random.default_rng(0), []
    for i in range(6):  # the MSD layout the run was fitted on, but 2D images
        image, label = blob_case((24, 24), rng)
        write(image, data / "imagesTr" / f"c{i}.nii.gz")
        write(label, data / "labelsTr" / f"c{i}.nii.gz")
        training.append({"image": f"./imagesTr/c{i}.nii.gz", "label": f"./labelsTr/c{i}.nii.gz"})
    (data / "dataset.json").write_text(json.dumps({"name": "flat", "modality": {"0": "MRI"}, "training": training,
                                                   "labels": {"0": "background", "1": "left", "2": "right"}}))
    fails(["fit", "--replay", str(small_run), "--out", str(tmp_path / "again"), str(data)],
          rf"{data}: has dimensions 2, but the run it replays \({small_run}\) was fitted on dimensions 3", small_run, data)
    assert not (tmp_path / "again").exists() and not (tmp_path / ".again.partial").exists()


def _set(path, value):
    def mutate(plan):
        *parents, last = path
        for key in parents:
            plan = plan[key]
        plan[last] = value
    return mutate


def _drop(path):
    def mutate(plan):
        *parents, last = path
        for key in parents:
            plan = plan[key]
        del plan[last]
    return mutate


CLASSICAL = ("rungs", "classical")
MUTATIONS = {
    "empty file": "",
    "truncated to 10 bytes": 10,
    "truncated in the middle": 0.5,
    "truncated before the end": -3,
    "null": "null",
    "a list": "[]",
    "no rungs": _drop(("rungs",)),
    "rungs a list": _set(("rungs",), []),
    "rung entry a string": _set(CLASSICAL, "done"),
    "no status": _drop((*CLASSICAL, "status")),
    "unknown status": _set((*CLASSICAL, "status"), "finished"),
    "no plan": _drop((*CLASSICAL, "plan")),
    "no choice": _drop((*CLASSICAL, "choice")),
    "plan settings a number": _set((*CLASSICAL, "plan", "settings"), 3),
    "plan seconds a string": _set((*CLASSICAL, "plan", "seconds"), "soon"),
    "unknown plan key": _set((*CLASSICAL, "plan", "warp"), 9),
    "unknown model name": _set((*CLASSICAL, "choice", "replay_config", "model"), "xgboost"),
    "hyperparameter of the wrong type": _set((*CLASSICAL, "choice", "replay_config", "n_estimators"), "many"),
    "unknown rung": _set(("rungs", "unet9d"), {"status": "done", "plan": {"seconds": 1}, "choice": {}}),
    "the rung marked skipped": _set((*CLASSICAL, "status"), "skipped"),
}


@pytest.mark.parametrize("mutation", list(MUTATIONS), ids=list(MUTATIONS))
def test_a_damaged_or_edited_realised_plan_is_refused_before_anything_trains(small_run, tmp_path, mutation):
    from automed.errors import RecipeError
    from automed.ladder.replay import replay_inputs

    run = _copy(small_run, tmp_path)
    path = run / "realised_plan.json"
    text, change = path.read_text(), MUTATIONS[mutation]
    if isinstance(change, str):
        text = change
    elif isinstance(change, (int, float)):
        text = text[:int(change * len(text)) if isinstance(change, float) else change]
    else:
        plan = json.loads(text)
        change(plan)
        text = json.dumps(plan)
    path.write_text(text)
    with pytest.raises((RunFolderError, RecipeError), match="realised_plan.json"):
        replay_inputs(run)


def test_an_edited_realised_plan_ends_the_replay_command_cleanly(small_run, tmp_path):
    run = _copy(small_run, tmp_path)
    plan = json.loads((run / "realised_plan.json").read_text())
    plan["rungs"]["classical"]["choice"]["replay_config"]["model"] = "xgboost"
    (run / "realised_plan.json").write_text(json.dumps(plan))
    fails(["fit", "--replay", str(run), "--out", str(tmp_path / "again")],
          r"realised_plan.json: the entry classical.choice differs from what the run's own records", run)
    assert not (tmp_path / "again").exists() and not (tmp_path / ".again.partial").exists()


# -- a resume continues only on the data its fit started on ------------------------------------


@pytest.fixture
def interrupted(small_run, tmp_path):
    """An interrupted fit of ``tmp_path/run`` (its staging folder, with state.json) on a copy of the data."""
    import shutil

    staging = copy_run(small_run, tmp_path / ".run.partial")
    data = Path(shutil.copytree(json.loads((staging / "run.json").read_text())["data"], tmp_path / "data"))
    meta = json.loads((staging / "run.json").read_text())
    (staging / "run.json").write_text(json.dumps({**meta, "data": str(data)}))
    (staging / "state.json").write_text('{"spent_s": 1.0}')
    return tmp_path / "run", staging, data


@pytest.mark.parametrize("change, said", [
    (lambda d: (d / "imagesTr" / "case_001.nii.gz").write_bytes(b"another case"),
     r"imagesTr/case_001.nii.gz was changed \(\d+ bytes, now 12\)"),
    (lambda d: (d / "labelsTr" / "case_002.nii.gz").unlink(), r"labelsTr/case_002.nii.gz was removed"),
    (lambda d: (d / "imagesTr" / "case_009.nii.gz").write_bytes(b"new"), r"imagesTr/case_009.nii.gz was added"),
], ids=["replaced", "removed", "added"])
def test_resume_after_the_dataset_changed_is_refused_naming_the_file(interrupted, change, said):
    out, staging, data = interrupted
    change(data)
    fails(["fit", "--resume", str(out)], rf"{data}: {said} since the fit of {out} started, so resuming would mix "
                                         "two datasets", staging, data)


def test_resume_on_the_same_data_continues(interrupted):
    out, staging, data = interrupted
    (data / ".DS_Store").write_bytes(b"hidden files do not count")
    result = CliRunner().invoke(main, ["fit", "--resume", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert (out / "report.json").is_file() and not staging.exists()


# -- weight files are checked against the checksums recorded at fit time ---------------------------


def _flip_a_byte(path: Path) -> None:
    content = bytearray(path.read_bytes())
    content[len(content) // 2] ^= 0xFF
    path.write_bytes(bytes(content))


def test_every_weight_file_is_recorded_with_its_checksum(small_run, tmp_path):
    import hashlib

    from automed.rungs.fitted import weight_checksums

    recorded = json.loads((small_run / "rungs" / "classical" / "result.json").read_text())["checksums"]
    assert recorded and recorded == {name: hashlib.sha256((small_run / "rungs" / "classical" / name).read_bytes())
                                     .hexdigest() for name in recorded}
    (tmp_path / "model_fold0.pt").write_bytes(b"weights")
    (tmp_path / "model.json").write_text("{}")
    assert weight_checksums(tmp_path) == {"model_fold0.pt": hashlib.sha256(b"weights").hexdigest()}


def test_a_changed_weight_file_is_refused_by_predict_and_export(small_run, tmp_path):
    out = _copy(small_run, tmp_path)
    _flip_a_byte(out / "rungs" / "classical" / "model.joblib")
    image = next((Path(json.loads((out / "run.json").read_text())["data"]) / "imagesTr").iterdir())
    said = (rf"{out / 'rungs' / 'classical' / 'model.joblib'}: checksum does not match the one recorded at fit time; "
            r"the file was changed or damaged; fit again\.")
    fails(["predict", str(out), str(image), "--out", str(tmp_path / "pred")], said, out)
    fails(["export", str(out), "--out", str(tmp_path / "exp"), "--format", "joblib"], said, out)
    assert not (tmp_path / "pred").exists() and not (tmp_path / "exp").exists()


def test_an_older_run_without_checksums_loads_with_a_warning(small_run, tmp_path, caplog):
    out = _copy(small_run, tmp_path)
    result_path = out / "rungs" / "classical" / "result.json"
    result = json.loads(result_path.read_text())
    del result["checksums"]
    result_path.write_text(json.dumps(result))
    image = next((Path(json.loads((out / "run.json").read_text())["data"]) / "imagesTr").iterdir())
    written = automed.load(out).predict(image, tmp_path / "pred")
    assert len(written) == 1 and "no weight checksums recorded" in caplog.text


# -- best() and predict's default name only a rung whose files are there ----------------------------


@pytest.fixture
def two_rungs(small_run, tmp_path):
    """A copy of the run with a second finished rung ``classical_copy`` (the classical rung's files again, its
    report entry slower and better), which the report recommends."""
    import shutil

    out = _copy(small_run, tmp_path)
    shutil.copytree(out / "rungs" / "classical", out / "rungs" / "classical_copy")
    report = json.loads((out / "report.json").read_text())
    copy = json.loads(json.dumps(report["rungs"][0]))
    copy["name"] = "classical_copy"
    copy["cost"]["fit_seconds"] *= 10
    report["rungs"].append(copy)
    report["best_rung"] = "classical_copy"
    (out / "report.json").write_text(json.dumps(report))
    return out


def test_best_skips_a_finished_rung_whose_files_are_gone(two_rungs, caplog):
    import shutil

    assert automed.load(two_rungs).best() == "classical_copy"
    shutil.rmtree(two_rungs / "rungs" / "classical_copy")
    assert automed.load(two_rungs).best() == "classical"
    assert "rung classical_copy finished, but its files are gone" in caplog.text
    (two_rungs / "rungs" / "classical" / "model.joblib").unlink()
    assert automed.load(two_rungs).best() is None


def test_predict_by_default_uses_a_rung_whose_files_are_there(two_rungs, tmp_path):
    import shutil

    shutil.rmtree(two_rungs / "rungs" / "classical_copy")
    image = next((Path(json.loads((two_rungs / "run.json").read_text())["data"]) / "imagesTr").iterdir())
    result = CliRunner().invoke(main, ["predict", str(two_rungs), str(image), "--out", str(tmp_path / "pred")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "pred" / ".automed-predictions.json").read_text())["rung"] == "classical"
    fails(["predict", str(two_rungs), str(image), "--out", str(tmp_path / "p2"), "--rung", "classical_copy"],
          rf"{two_rungs / 'rungs' / 'classical_copy' / 'result.json'}: missing, so the classical_copy rung cannot be "
          "used", two_rungs)
    shutil.rmtree(two_rungs / "rungs" / "classical")
    fails(["predict", str(two_rungs), str(image), "--out", str(tmp_path / "p3")],
          rf"{two_rungs / 'rungs' / 'classical_copy' / 'result.json'}: missing, so the classical_copy rung cannot be "
          "used, and no other finished rung has all its files", two_rungs)
