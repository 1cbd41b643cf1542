"""The Task contract: every registered task declares a consistent set of facts and opens its data the same
way for a new fit and a resumed one, with cases to judge on that no rung tunes on. No fit runs here: the
end-to-end fits of each task are in the rung contract (tests/test_rung_contract.py)."""

from __future__ import annotations

import pytest

import automed
from automed.errors import RecipeError
from automed.rungs import rung_class
from automed.tasks import Task, get_task, register_task, task_names
from conftest import make_msd, make_npz, make_registration

TASK_OPTIONS = {"folds_file": "splits.json", "target_spacing": (1.0, 1.0, 1.0), "label_fractions": (0.5,),
                "ordinal": True, "class_order": ("0", "1"), "atlas": "atlas.nii.gz"}
"""A non-default value of every task-specific recipe field."""


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("tasks")
    return {"segmentation": make_msd(root / "msd", n_cases=6, shape=(12, 12, 12)),
            "classification": make_npz(root / "toy.npz", sizes=(40, 12, 20)),
            "registration": make_registration(root / "pairs", n=6, shape=(10, 12, 10))}


@pytest.mark.parametrize("name", task_names())
def test_a_task_declares_consistent_facts(name):
    task = get_task(name)
    assert isinstance(task, Task) and task.name == name
    assert task.data_formats[0] == "auto" and len(set(task.data_formats)) == len(task.data_formats)
    assert task.metrics and set(task.default_rungs) <= set(task.rungs)
    recipe = automed.Recipe(task=name)
    assert recipe.metric == task.metrics[0] and [s.name for s in recipe.rungs] == list(task.default_rungs)
    for rung in task.rungs:
        assert rung_class(rung, name).Params  # every registry entry imports and has a parameter schema
        assert issubclass(rung_class(rung, name), task.fitted_model)  # and predicts as the task's predictor calls
    assert task.predictor.count(":") == 1


@pytest.mark.parametrize("name", task_names())
@pytest.mark.parametrize("option", sorted(TASK_OPTIONS))
def test_another_tasks_recipe_field_is_refused_naming_the_tasks_that_read_it(name, option):
    if option in get_task(name).recipe_options:
        return
    readers = [t for t in task_names() if option in get_task(t).recipe_options]
    with pytest.raises(RecipeError, match=rf"appl(y|ies) to {' and '.join(readers)} only"):
        automed.Recipe(task=name, **{option: TASK_OPTIONS[option]})


def test_an_unregistered_task_is_an_error_never_another_tasks_code():
    with pytest.raises(RecipeError, match=r"'task' parameter of Recipe must be one of \['segmentation', 'classification', "
                                          r"'registration'\]"):
        automed.Recipe(task="regression")
    with pytest.raises(RecipeError, match=r"Unknown task 'regression'; the tasks are \['segmentation'"):
        rung_class("classical", "regression")
    with pytest.raises(TypeError, match="Task instance"):
        register_task("regression")


@pytest.mark.parametrize("name", task_names())
def test_reopening_gives_what_preparing_gave_and_the_judged_cases_are_never_tuned_on(name, data):
    task = get_task(name)
    recipe = automed.Recipe(task=name, n_folds=2, n_jobs=1)
    prepared = task.prepare(recipe, data[name], progress=False)
    ids = {c.case_id for c in prepared.dataset.cases}
    folds = prepared.splits["folds"]
    # registration keeps one split whatever n_folds says: training volumes, and evaluation pairs of held-out ones
    assert len(folds) == (1 if name == "registration" else 2) and all(set(f["train"]).isdisjoint(f["val"])
                                                                       for f in folds)
    judged = task.comparison_cases(recipe, prepared.opened)
    assert judged and set(judged) <= ids
    assert set(judged).isdisjoint(folds[0]["train"])  # the cases judged on are never a training case of fold 0
    reopened = task.reopen(recipe, data[name], prepared.fingerprint_record, prepared.splits)
    assert {c.case_id for c in reopened.dataset.cases} == ids
    assert task.comparison_cases(recipe, reopened) == judged
    fingerprint = reopened.fingerprint
    assert (fingerprint.to_dict() if hasattr(fingerprint, "to_dict") else fingerprint) == prepared.fingerprint_record
