"""A third task defined here, touching no module of automed: image-level regression of a scalar (the area of a
bright disc), with one rung (ridge regression on intensity statistics). It registers, fits, is judged, reported,
predicted and replayed through the same calls as segmentation and classification, and export refuses it clearly.

This file is also the worked example of the README's "Adding a task": a task is one :class:`automed.tasks.Task`
subclass, its rungs and its predictor, registered with :func:`automed.tasks.register_task`.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pytest

import automed
from automed.data.splits import make_folds
from automed.errors import AutomedError
from automed.results import RungResult
from automed.rungs.base import FitContext, Rung, RungOutcome, RungPlan
from automed.tasks import Opened, Prepared, Task, register_task, task_names, unregister_task

N_BOOTSTRAP = 500


@dataclass(frozen=True)
class Images:
    """The regression dataset: ``images[i]`` is case ``case_ids[i]`` with target ``targets[i]``."""

    path: Path
    case_ids: list[str]
    images: np.ndarray
    targets: np.ndarray
    format: str = "npz"

    @property
    def cases(self) -> list[Any]:  # what the runner and Task.comparison_cases read: objects with a case_id
        return [_Case(c) for c in self.case_ids]


@dataclass(frozen=True)
class _Case:
    case_id: str


def open_images(path: Path) -> Images:
    with np.load(path) as npz:
        images, targets = npz["images"].astype(np.float32), npz["targets"].astype(np.float64)
    return Images(path, [f"case_{i:03d}" for i in range(len(images))], images, targets)


def features(images: np.ndarray) -> np.ndarray:
    """Per image: mean, standard deviation and the fraction of pixels above half the maximum."""
    flat = images.reshape(len(images), -1)
    return np.stack([flat.mean(1), flat.std(1), (flat > flat.max(1, keepdims=True) / 2).mean(1)], axis=1)


def r2_with_ci(truth: np.ndarray, prediction: np.ndarray, random_state: int) -> dict[str, Any]:
    from sklearn.metrics import r2_score

    rng = np.random.default_rng(random_state)
    draws = [r2_score(truth[i], prediction[i]) for i in (rng.integers(0, len(truth), len(truth))
                                                         for _ in range(N_BOOTSTRAP))]
    return {"name": "r2", "mean": float(r2_score(truth, prediction)), "ci_low": float(np.percentile(draws, 2.5)),
            "ci_high": float(np.percentile(draws, 97.5)), "n": len(truth)}


@runtime_checkable
class RegressionModel(Protocol):
    """What the regression predictor calls on a fitted rung."""

    def predict(self, images: np.ndarray) -> np.ndarray: ...


class RidgeRung(Rung):
    """Ridge regression of the target on intensity statistics, its penalty chosen by cross-validation."""

    name = "ridge"
    tasks = ("regression",)

    @dataclass(frozen=True)
    class Params:
        alphas: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0)

    def search_space(self, trial: Any) -> dict[str, Any]:
        return {"alpha": trial.suggest_float("alpha", 1e-3, 1e2, log=True)}

    def plan(self, context: FitContext) -> RungPlan:
        return RungPlan(seconds=1.0, note="a closed-form fit", min_seconds=1.0)

    def fit(self, context: FitContext, plan: RungPlan | None = None) -> RungOutcome:
        import joblib
        from sklearn.linear_model import RidgeCV

        data, index = context.dataset, {c: i for i, c in enumerate(context.dataset.case_ids)}
        dev, test = [index[c] for c in context.splits["dev"]], [index[c] for c in context.splits["test"]]
        x = features(data.images)
        cv = [([index[c] for c in f["train"]], [index[c] for c in f["val"]]) for f in context.folds]
        self.model_ = RidgeCV(alphas=self.params.alphas, cv=[(np.searchsorted(dev, a), np.searchsorted(dev, b))
                                                             for a, b in cv]).fit(x[dev], data.targets[dev])
        joblib.dump(self.model_, context.folder / "model.joblib")
        prediction = self.model_.predict(x[test])
        per_case = [{"case_id": data.case_ids[i], "target": float(data.targets[i]), "prediction": float(p)}
                    for i, p in zip(test, prediction)]
        metric = r2_with_ci(data.targets[test], prediction, context.random_state)
        return RungOutcome(per_case, summary={"metric": metric, "per_class": {}},
                           details={"alpha": float(self.model_.alpha_)}, n_params=x.shape[1] + 1)

    @classmethod
    def load(cls, folder: Path) -> RidgeRung:
        import joblib

        rung = cls()
        rung.model_ = joblib.load(folder / "model.joblib")
        return rung

    def predict(self, images: np.ndarray) -> np.ndarray:
        return self.model_.predict(features(images))


class Regression(Task):
    """One scalar per image (here the area of a bright disc), judged by R² on held-out test cases."""

    name = "regression"
    data_formats = ("auto", "npz")
    metrics = ("r2",)
    default_rungs = ("ridge",)
    rungs = {"ridge": f"{__name__}:RidgeRung"}
    predictor = f"{__name__}:predict_regression"
    fitted_model = RegressionModel

    def prepare(self, recipe: automed.Recipe, data: Path, progress: bool) -> Prepared:
        dataset = open_images(data)
        rng = np.random.default_rng(recipe.random_state)
        order = [dataset.case_ids[i] for i in rng.permutation(len(dataset.case_ids))]
        n_test = max(2, round(recipe.test_fraction * len(order)))
        dev, test = sorted(order[n_test:]), sorted(order[:n_test])
        splits = {"kind": "holdout", "dev": dev, "test": test,
                  "folds": make_folds(dev, [None] * len(dev), recipe.n_folds, recipe.random_state)}
        fingerprint = {"n_cases": len(order), "shape": list(dataset.images.shape[1:]),
                       "target_range": [float(dataset.targets.min()), float(dataset.targets.max())]}
        return Prepared(dataset, fingerprint, splits, fingerprint)

    def reopen(self, recipe: automed.Recipe, data: Path, fingerprint_record: dict[str, Any],
               splits: dict[str, Any]) -> Opened:
        return Opened(open_images(data), fingerprint_record, splits)

    def comparison_cases(self, recipe: automed.Recipe, opened: Opened) -> list[str]:
        return list(opened.splits["test"])

    def summarize(self, outcome: RungOutcome, context: FitContext, recipe: automed.Recipe) -> dict[str, Any]:
        return outcome.summary

    def comparison(self, result: RungResult, comparison_cases: list[str], recipe: automed.Recipe,
                   fingerprint: Any) -> tuple[dict[str, Any], Any]:
        judged = {"metric": result.metric, "cases": "held-out test cases", "n": len(result.per_case),
                  "case_ids": [c["case_id"] for c in result.per_case]}

        def gain_over(base: RungResult) -> dict[str, Any] | None:
            theirs = {c["case_id"]: c["prediction"] for c in base.per_case}
            mine = [c for c in result.per_case if c["case_id"] in theirs]
            if not mine:
                return None
            truth = np.array([c["target"] for c in mine])
            new = r2_with_ci(truth, np.array([c["prediction"] for c in mine]), recipe.random_state)
            old = r2_with_ci(truth, np.array([theirs[c["case_id"]] for c in mine]), recipe.random_state)
            return {"vs": base.name, "mean": new["mean"] - old["mean"], "ci_low": None, "ci_high": None}

        return judged, gain_over


def predict_regression(run_folder: Path, inputs: Path, out: Path, *, rung: str, split: str | None,
                       overwrite: bool, progress: bool, tta: bool) -> Path:
    """Write ``out`` (a CSV of ``case,prediction``) for the images of the ``.npz`` ``inputs``."""
    from automed.rungs.fitted import load_fitted

    out = Path(out)
    if out.exists() and not overwrite:
        raise automed.errors.RunFolderError(f"{out}: already exists; pass overwrite=True or choose another out.")
    model = load_fitted(rung, "regression", Path(run_folder) / "rungs" / rung)
    dataset = open_images(Path(inputs))
    with out.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["case", "prediction"])
        writer.writerows(zip(dataset.case_ids, (f"{p:.6f}" for p in model.predict(dataset.images))))
    return out


def make_discs(path: Path, n: int = 40, size: int = 16, seed: int = 0) -> Path:
    """Images of one bright disc of a random radius on noise; the target is the disc's area in pixels."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images, targets = [], []
    for _ in range(n):
        radius, (cy, cx) = rng.uniform(2, 6), rng.uniform(6, size - 6, 2)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius ** 2
        images.append(disc * 1.0 + rng.normal(0, 0.1, (size, size)))
        targets.append(disc.sum())
    np.savez(path, images=np.array(images, np.float32), targets=np.array(targets, np.float64))
    return path


@pytest.fixture(scope="module")
def regression():
    task = register_task(Regression())
    yield task
    unregister_task(task.name)


@pytest.fixture(scope="module")
def fitted(regression, tmp_path_factory):
    root = tmp_path_factory.mktemp("regression")
    data = make_discs(root / "discs.npz")
    run = automed.fit(automed.Recipe(task="regression", n_folds=3, n_jobs=1), data, root / "run")
    return run, data, root


def test_the_third_task_registers_and_a_recipe_takes_its_facts(regression):
    assert "regression" in task_names()
    recipe = automed.Recipe(task="regression")
    assert recipe.metric == "r2" and [s.name for s in recipe.rungs] == ["ridge"]


def test_the_third_task_fits_is_judged_and_reported(fitted):
    run, _, _ = fitted
    report = json.loads((run.folder / "report.json").read_text())
    assert report["task"] == "regression" and report["best_rung"] == "ridge"
    ridge = report["rungs"][0]
    assert ridge["status"] == "done" and ridge["metric"]["name"] == "r2"
    assert ridge["metric"]["mean"] > 0.8  # the disc's bright-pixel fraction is nearly its area
    assert ridge["comparison"]["cases"] == "held-out test cases"
    splits = json.loads((run.folder / "splits.json").read_text())
    assert set(ridge["comparison"]["case_ids"]) == set(splits["test"]) and set(splits["test"]).isdisjoint(splits["dev"])
    markdown = (run.folder / "report.md").read_text()
    assert ": 40 cases." in markdown and "## ridge, on its 8 evaluated cases" in markdown  # the default TaskReport
    assert "per class" not in markdown and "Dice" not in markdown  # nothing of another task's report
    assert "ridge, on its 8 evaluated cases" in (run.folder / "report.html").read_text()
    assert run.leaderboard()[0]["rung"] == "ridge"


def test_the_third_task_predicts_through_its_own_predictor(fitted):
    run, data, root = fitted
    written = run.predict(data, root / "predictions.csv")
    rows = list(csv.DictReader(written[0].open()))
    truth = np.load(data)["targets"]
    prediction = np.array([float(r["prediction"]) for r in rows])
    assert len(rows) == len(truth) and np.corrcoef(prediction, truth)[0, 1] > 0.9


def test_the_third_task_replays_its_run(fitted):
    run, data, root = fitted
    replayed = automed.replay(run.folder, root / "replayed")
    before = json.loads((run.folder / "report.json").read_text())["rungs"][0]["metric"]["mean"]
    after = json.loads((replayed.folder / "report.json").read_text())["rungs"][0]["metric"]["mean"]
    assert after == pytest.approx(before)


def test_the_command_line_fits_inspects_and_predicts_the_third_task(regression, tmp_path):
    from click.testing import CliRunner

    from automed.cli import main

    data = make_discs(tmp_path / "discs.npz", n=20)
    inspected = CliRunner().invoke(main, ["inspect", "--task", "regression", str(data)])
    assert inspected.exit_code == 0, inspected.output
    assert f"{data}: 20 cases, npz layout" in inspected.output and "No problems found." in inspected.output
    fitted = CliRunner().invoke(main, ["fit", "--task", "regression", str(data), "--out", str(tmp_path / "run"),
                                       "--folds", "2"])
    assert fitted.exit_code == 0, fitted.output
    predicted = CliRunner().invoke(main, ["predict", str(tmp_path / "run"), str(data), "--out",
                                          str(tmp_path / "predicted.csv")])
    assert predicted.exit_code == 0, predicted.output
    assert len((tmp_path / "predicted.csv").read_text().splitlines()) == 21


def test_exporting_the_third_tasks_rung_is_refused_naming_why(fitted):
    run, _, root = fitted
    with pytest.raises(AutomedError, match=r"rung .ridge. \(RidgeRung\) declares no export; use it through automed"):
        run.export(root / "export")
    assert not (root / "export").exists()
