"""Every registered rung of every task through the same contract, on tiny synthetic data.

For each rung: a fit under a time budget is interrupted (in its second search trial when
it searches, else as it starts), resumed to a finished result without refitting the rungs
below it or the trials it finished, and reported with its cost; the fitted rung is loaded
from its folder and predicts, directly and through the run; and a plan for an allotment it
cannot fit is a skip with the reason. The ImageNet transfer rungs, offline, are skipped with
the reason (``tests/test_transfer.py`` fits them from weights the tests make).
"""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

import automed
from automed.ladder.runner import resume_run
from automed.rungs import rung_class
from automed.tasks import get_task, task_names
from conftest import FAST_CLASSIFICATION, FAST_PARAMS, make_msd, make_npz, make_registration

SEGMENTATION_DEEP = {"n_trials": 2, "max_epochs": 2, "min_epochs": 1, "iterations": 2, "widths": [8],
                     "depths": [3], "batch_sizes": [2], "tta": False}
CLASSIFIER_DEEP = {"n_trials": 2, "max_epochs": 2, "min_epochs": 1, "widths": [4], "depths": [1],
                   "batch_sizes": [16], "n_models": 1, "augmentations": ["light"]}
PARAMS = {
    "segmentation": {"classical": FAST_PARAMS, "ensemble": {}},
    "classification": {"classical": FAST_CLASSIFICATION, "ensemble": {},
                       "ssl": {**CLASSIFIER_DEEP, "n_trials": 0, "pretrain_epochs": 2},
                       "vgg16": {"max_epochs": 2, "min_epochs": 1}, "inception_v3": {"max_epochs": 2, "min_epochs": 1}},
}
PARAMS["registration"] = {"affine": {"n_trials": 2, "n_tuning_pairs": 2},
                          "classical": {"n_trials": 3, "n_tuning_pairs": 2},
                          "voxelmorph": {"n_trials": 2, "min_steps": 3, "max_steps": 12, "widths": [4],
                                         "n_tuning_pairs": 2}}
#: Rungs fitted below a rung that combines others.
MEMBERS = {"segmentation": ["unet2d", "unetpp"], "classification": ["cnn"], "registration": []}
TRANSFER = {"vgg16", "inception_v3"}
RUNGS = [(task, name) for task in task_names() for name in get_task(task).rungs]


def params_of(task: str, name: str) -> dict:
    return PARAMS[task].get(name, SEGMENTATION_DEEP if task == "segmentation" else CLASSIFIER_DEEP)


def ladder(task: str, name: str) -> list[str]:
    below = MEMBERS[task] if rung_class(name, task).combines_others else []
    return ["classical"] + below + ([name] if name != "classical" else [])


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp("contract")
    return {"segmentation": make_msd(root / "msd", n_cases=6, shape=(16, 16, 16)),
            "classification": make_npz(root / "toy.npz", sizes=(48, 16, 24)),
            "registration": make_registration(root / "pairs", n=8)}


@pytest.fixture
def offline(monkeypatch):
    """ImageNet weights cannot be downloaded (as in CI), whatever this machine's torch hub cache holds."""
    import urllib.error

    from torchvision.models import get_model_weights

    def unavailable(*args, **kwargs):
        raise urllib.error.URLError("no internet")

    for arch in TRANSFER:
        monkeypatch.setattr(type(get_model_weights(arch).IMAGENET1K_V1), "get_state_dict", unavailable)


def interrupt(monkeypatch, task: str, name: str) -> str:
    """Raise KeyboardInterrupt in the rung's second search trial, or as its fit starts when it does not search."""
    import optuna

    if params_of(task, name).get("n_trials", 0) >= 2:
        real = optuna.study.Study.optimize

        def optimize(study, objective, *args, **kwargs):
            def second_trial_interrupted(trial):
                if trial.number == 1:
                    raise KeyboardInterrupt
                return objective(trial)
            rung = study.study_name.split(":", 1)[-1]  # study names are "<run id>:<rung>"
            return real(study, second_trial_interrupted if rung.startswith(name) else objective,
                        *args, **kwargs)

        monkeypatch.setattr(optuna.study.Study, "optimize", optimize)
        return "trial"
    cls = rung_class(name, task)
    real_fit = cls.fit

    def fit(self, context, plan=None):
        monkeypatch.setattr(cls, "fit", real_fit)
        raise KeyboardInterrupt

    monkeypatch.setattr(cls, "fit", fit)
    return "fit"


def trial_states(db, name: str) -> list[tuple[int, str]]:
    with sqlite3.connect(db) as con:
        return con.execute("SELECT t.number, t.state FROM trials t JOIN studies s ON t.study_id = s.study_id "
                           "WHERE s.study_name LIKE ? ORDER BY t.number", (f"%:{name}%",)).fetchall()


@pytest.mark.parametrize("task, name", [pytest.param(task, name, marks=() if name == "classical" else pytest.mark.slow)
                                        for task, name in RUNGS])  # the whole matrix in `make test-all`
def test_rung_contract(task, name, datasets, tmp_path, monkeypatch, offline):
    data = datasets[task]
    recipe = automed.Recipe(task=task, n_folds=2, n_jobs=1, full_ladder=True, budget_s=1800,
                            rungs=[{"name": r, "params": params_of(task, r)} for r in ladder(task, name)])
    out = tmp_path / "run"
    if name in TRANSFER:
        automed.fit(recipe, data, out, progress=False)
        result = json.loads((out / "rungs" / name / "result.json").read_text())
        assert result["status"] == "skipped" and "weights" in result["reason"]
        return

    where = interrupt(monkeypatch, task, name)
    with pytest.raises(KeyboardInterrupt):
        automed.fit(recipe, data, out, progress=False)
    monkeypatch.undo()
    staging = tmp_path / ".run.partial"
    below = {r: (staging / "rungs" / r / "result.json").read_text() for r in ladder(task, name)[:-1]}
    if where == "trial":
        assert trial_states(staging / "optuna.db", name)[0][1] == "COMPLETE"
    run = resume_run(out, progress=False)

    folder = run / "rungs" / name
    result = json.loads((folder / "result.json").read_text())
    assert result["status"] == "done", result["reason"]
    assert {r: (folder.parent / r / "result.json").read_text() for r in below} == below
    if where == "trial":
        states = trial_states(run / "optuna.db", name)
        assert states[0][1] == "COMPLETE" and sum(s == "COMPLETE" for _, s in states) >= 2
    cost = result["cost"]
    assert cost["fit_seconds"] > 0 and cost["peak_rss_bytes"] > 0 and cost["predict_seconds_per_case"] > 0
    assert cost["core_hours"] > 0 and cost["device"] in ("cpu", "cuda")
    if name != "classical" or task == "segmentation":
        assert result["gain_vs_baseline"] is None if name == "classical" else result["gain_vs_baseline"]["vs"]

    fitted = rung_class(name, task).load(folder)
    fitted_run = automed.load(run)
    if task == "segmentation":
        assert fitted.predict(np.zeros((1, 16, 16, 16), np.float32)).shape == (16, 16, 16)
        assert len(fitted_run.predict(data / "imagesTr", tmp_path / "pred", rung=name)) == 6
    elif task == "registration":
        grid = json.loads((run / "fingerprint.json").read_text())["grid"]
        assert fitted.register(*np.zeros((2, 1, *grid), np.float32)).shape == (3, *grid)
        assert len(fitted_run.predict(data, tmp_path / "pred", rung=name)) == 1 + 3 * 2  # pairs.csv, 3 files a pair
    else:
        from automed.data.classification import open_classification

        dataset = open_classification(data)
        cases = dataset.cases[:5]
        proba = fitted.predict_proba(dataset, cases)
        assert proba.shape == (5, 2) and np.allclose(proba.sum(axis=1), 1, atol=1e-5)


@pytest.mark.parametrize("task, name", [r for r in RUNGS if r != ("classification", "classical") and r[1] not in TRANSFER])
def test_a_plan_that_cannot_fit_its_allotment_is_a_skip_with_the_reason(task, name, datasets, tmp_path):
    from automed.cluster.storage import StudyStorage
    from automed.rungs.base import FitContext

    # the task's own preparation opens the data as a fit would, without fitting anything
    prepared = get_task(task).prepare(automed.Recipe(task=task, n_folds=2, n_jobs=1), datasets[task], progress=False)
    allotment = 0.01 if task == "registration" else 0.5  # a few tiny pairs register within half a second
    context = FitContext(prepared.dataset, prepared.fingerprint, prepared.splits["folds"], tmp_path / name, 0, 1,
                         allotment,
                         StudyStorage.resolve(None, tmp_path, None), progress=False, splits=prepared.splits)
    cls = rung_class(name, task)
    plan = cls(cls.Params(**params_of(task, name))).plan(context)
    assert plan.skip_reason, plan
