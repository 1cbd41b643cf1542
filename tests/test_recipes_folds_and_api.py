"""Bad input at the edges of a fit that a user writes by hand: folds files, recipes, worker counts,
ordinal class orders and the arguments of the public API.

Each bad input ends in one sentence naming where the problem is (a :class:`DataError`,
:class:`RecipeError` or :class:`TypeError`), or is accepted with a warning saying what was done;
nothing is written. Hypothesis mutates valid folds files and recipes: every mutation ends in a
clean error or in a valid result.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from automed.cli import main
from automed.recipe import Recipe
from automed.data.splits import read_folds
from automed.errors import DataError, RecipeError
from conftest import make_msd, make_nnunet

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# ---------------------------------------------------------------------------------------------
# Folds files (nnU-Net's splits_final.json)
# ---------------------------------------------------------------------------------------------

IDS = ["a", "b", "c", "d", "e", "f"]
VALID = [{"train": ["c", "d", "e", "f"], "val": ["a", "b"]},
         {"train": ["a", "b", "e", "f"], "val": ["c", "d"]},
         {"train": ["a", "b", "c", "d"], "val": ["e", "f"]}]


def _folds_file(folder: Path, folds: object) -> Path:
    path = folder / "splits_final.json"
    path.write_text(folds if isinstance(folds, str) else json.dumps(folds))
    return path


BAD_FOLDS = {
    "one case validated twice": ([{"train": ["c", "d", "e", "f"], "val": ["a", "b"]},
                                  {"train": ["b", "d", "e", "f"], "val": ["a", "c"]}],
                                 r"fold 1 validates case\(s\) \['a'\] that fold 0 validates already"),
    "in no fold": ([{"train": ["c", "d", "e"], "val": ["a", "b"]}, {"train": ["a", "b", "e"], "val": ["c", "d"]}],
                   r"case\(s\) \['f'\] .*are in no fold; add them to the folds file"),
    "left out of one fold": ([{"train": ["c", "d", "e", "f"], "val": ["a", "b"]},
                              {"train": ["a", "e", "f"], "val": ["c", "d"]}],
                             r"fold 1 leaves out case\(s\) \['b'\]"),
    "duplicated fold": (VALID + [VALID[2]], r"fold 3 repeats fold 2"),
    "twice in a training list": ([{"train": ["c", "d", "e", "f", "c"], "val": ["a", "b"]}] + VALID[1:],
                                 r"fold 0 lists case\(s\) \['c'\] more than once in its train list"),
    "twice in a validation list": ([{"train": ["c", "d", "e", "f"], "val": ["a", "b", "a"]}] + VALID[1:],
                                   r"fold 0 lists case\(s\) \['a'\] more than once in its val list"),
    "train and val": ([{"train": ["b", "c", "d", "e", "f"], "val": ["a", "b"]}] + VALID[1:],
                      r"fold 0 has case\(s\) \['b'\] in both train and val"),
    "unknown name": ([VALID[0], {"train": ["a", "b", "e", "f"], "val": ["c", "d", "x"]}, VALID[2]],
                     r"fold 1 names case\(s\) \['x'\] that the dataset does not have"),
    "empty val": ([VALID[0], {"train": ["a", "b", "e", "f"], "val": []}, VALID[2]], r"fold 1 has no validation case"),
    "empty train": ([VALID[0], {"train": [], "val": ["c", "d"]}, VALID[2]], r"fold 1 has no training case"),
    "an object": ({"train": IDS, "val": IDS}, r"a list of two or more .* it holds an object"),
    "one fold": (VALID[:1], r"a list of two or more .* it holds a list of 1 item"),
    "no folds": ([], r"it holds a list of 0 item"),
    "null": ("null", r"it holds null"),
    "not JSON": ("[{'train': ['a']}]", r"cannot read the folds file \(JSONDecodeError"),
    "fold not an object": ([VALID[0], ["a", "b"]], r"fold 1 is a list of 2 item\(s\), not an object"),
    "a key missing": ([VALID[0], {"train": ["a"]}], r"fold 1 is \['train'\], not an object with the keys"),
    "an extra key": ([VALID[0], {**VALID[1], "test": ["x"]}], r"fold 1 is \['test', 'train', 'val'\], not an obj"),
    "numbers as ids": ([VALID[0], {"train": [1, 2], "val": [3]}], r"fold 1's train is a list of 2 item\(s\), not a "
                                                                  r"list of case-id strings"),
    "ids as a string": ([VALID[0], {"train": "abef", "val": ["c", "d"]}], r"fold 1's train is a string"),
}


@pytest.mark.parametrize("name", sorted(BAD_FOLDS))
def test_a_bad_folds_file_is_one_sentence_naming_the_file(tmp_path, name):
    folds, message = BAD_FOLDS[name]
    path = _folds_file(tmp_path, folds)
    with pytest.raises(DataError, match=rf"^{tmp_path}/splits_final\.json: .*{message}") as caught:
        read_folds(path, IDS, [None] * len(IDS))
    assert "\n" not in str(caught.value)


def test_a_number_of_folds_asked_for_must_be_the_files(tmp_path):
    path = _folds_file(tmp_path, VALID)
    with pytest.raises(DataError, match=r"splits_final\.json: the folds file has 3 folds but 2 were asked for"):
        read_folds(path, IDS, [None] * len(IDS), n_folds=2)
    assert len(read_folds(path, IDS, [None] * len(IDS), n_folds=3)) == 3


def test_cases_only_trained_on_are_accepted_with_a_warning(tmp_path, caplog):
    folds = [{"train": ["c", "d", "e", "f"], "val": ["a", "b"]}, {"train": ["a", "b", "e", "f"], "val": ["c", "d"]}]
    with caplog.at_level(logging.WARNING, logger="automed"):
        read = read_folds(_folds_file(tmp_path, folds), IDS, [None] * len(IDS))
    assert read == folds
    assert "2 case(s) are validated in no fold, only trained on: ['e', 'f']" in caplog.text


@pytest.fixture(scope="module")
def msd(tmp_path_factory) -> tuple[Path, list[str]]:
    """A six-case MSD dataset and its case ids."""
    root = make_msd(tmp_path_factory.mktemp("folds") / "data", n_cases=6, shape=(8, 9, 8))
    return root, sorted(p.name.removesuffix(".nii.gz") for p in (root / "imagesTr").iterdir())


@pytest.mark.parametrize("folds, options, message", [
    ("two folds", ["--folds", "3"], r"the folds file has 2 folds but 3 were asked for"),
    ("two folds", ["--folds", "5"], r"the folds file has 2 folds but 5 were asked for"),
    ("validated twice", [], r"fold 1 validates case\(s\)"),
    ("in no fold", [], r"are in no fold"),
])
def test_fit_refuses_a_bad_folds_file_before_writing(tmp_path, msd, folds, options, message):
    data, ids = msd
    files = {"two folds": [{"train": ids[3:], "val": ids[:3]}, {"train": ids[:3], "val": ids[3:]}],
             "validated twice": [{"train": ids[2:], "val": ids[:2]}, {"train": ids[1:], "val": ids[:1]}],
             "in no fold": [{"train": ids[2:5], "val": ids[:2]}, {"train": ids[:2], "val": ids[2:5]}]}
    path = _folds_file(tmp_path, files[folds])
    cli = CliRunner().invoke(main, ["fit", str(data), "--out", str(tmp_path / "run"), "--folds-file", str(path),
                                    "--rungs", "classical", "--jobs", "1", "--quiet", *options])
    assert cli.exit_code == 1, cli.output
    assert cli.output.startswith(f"Error: {path}: ") and "Traceback" not in cli.output
    assert len(cli.output.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["splits_final.json"]  # no run folder, no staging folder


def _valid(folds: object) -> bool:
    """The oracle: a folds file automed must accept (over ``IDS``, no patient groups)."""
    if not isinstance(folds, list) or len(folds) < 2:
        return False
    validated: list[str] = []
    for fold in folds:
        if not (isinstance(fold, dict) and set(fold) == {"train", "val"}
                and all(isinstance(fold[k], list) and all(isinstance(c, str) for c in fold[k]) for k in fold)):
            return False
        train, val = fold["train"], fold["val"]
        if not train or not val or len(set(train)) < len(train) or len(set(val)) < len(val):
            return False
        if set(train) & set(val) or sorted(train + val) != IDS:
            return False
        validated += val
    return len(set(validated)) == len(validated)


def _editable(folds: object) -> bool:
    return isinstance(folds, list) and len(folds) > 0 and all(
        isinstance(f, dict) and all(isinstance(f.get(k), list) and f[k] for k in ("train", "val")) for f in folds)


def _mutate(folds: list, data: st.DataObject) -> object:
    """One random edit of the kind a hand-edited splits_final.json gets."""
    folds = json.loads(json.dumps(folds))
    k = data.draw(st.integers(0, len(folds) - 1), label="fold")
    side = data.draw(st.sampled_from(["train", "val"]), label="side")
    other = "val" if side == "train" else "train"
    edit = data.draw(st.sampled_from(["drop case", "copy case", "move case", "swap cases", "unknown case",
                                      "drop fold", "copy fold", "shuffle", "wrong type", "rename key"]), label="edit")
    ids = folds[k][side]
    if edit == "drop case" and ids:
        ids.pop(data.draw(st.integers(0, len(ids) - 1)))
    elif edit == "copy case":
        folds[data.draw(st.integers(0, len(folds) - 1))][data.draw(st.sampled_from(["train", "val"]))].append(
            data.draw(st.sampled_from(IDS)))
    elif edit == "move case" and ids:
        folds[k][other].append(ids.pop(data.draw(st.integers(0, len(ids) - 1))))
    elif edit == "swap cases":  # a valid edit: one case changes fold, another takes its place
        j = (k + 1) % len(folds)
        a, b = folds[k]["val"][0], folds[j]["val"][0]
        for fold in (folds[k], folds[j]):
            fold["val"] = [b if c == a else a if c == b else c for c in fold["val"]]
            fold["train"] = [b if c == a else a if c == b else c for c in fold["train"]]
    elif edit == "unknown case":
        ids.append("zz")
    elif edit == "drop fold":
        folds.pop(k)
    elif edit == "copy fold":
        folds.append(folds[k])
    elif edit == "shuffle":  # a valid edit: order never matters
        data.draw(st.randoms()).shuffle(ids)
    elif edit == "wrong type":
        folds[k][side] = data.draw(st.sampled_from([None, 3, "a", {"a": 1}, [1, 2]]))
    elif edit == "rename key":
        folds[k]["Val" if side == "val" else "training"] = folds[k].pop(side)
    return folds


@settings(FUZZ, max_examples=300)  # no data is read: 300 files take about a second
@given(data=st.data())
def test_a_mutated_folds_file_is_refused_or_valid(tmp_path, data):
    folds = VALID
    for _ in range(data.draw(st.integers(1, 3), label="n_edits")):
        if not _editable(folds):  # an edit broke the layout: nothing left to edit case by case
            break
        folds = _mutate(folds, data)
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    try:
        try:
            read = read_folds(_folds_file(folder, folds), IDS, [None] * len(IDS))
        except DataError as exc:
            assert str(exc).startswith(f"{folder}/splits_final.json: ") and not _valid(folds), str(exc)
            return
        assert _valid(folds), f"accepted {folds}"
        assert read == [{"train": sorted(f["train"]), "val": sorted(f["val"])} for f in folds]
    finally:
        shutil.rmtree(folder)


# ---------------------------------------------------------------------------------------------
# Recipes
# ---------------------------------------------------------------------------------------------

RECIPE_YAML = """\
task: segmentation
n_folds: 3
budget: 15min
n_jobs: 1
rungs:
  - name: classical
    params:
      num_sigma: 4
      models: [lightgbm]
      n_trials: 6
  - unet2d
"""


@pytest.mark.parametrize("make", [lambda: Recipe(rungs=[]), lambda: Recipe(rungs=()),
                                  lambda: Recipe.from_yaml(RECIPE_YAML.split("rungs:")[0] + "rungs: []\n"),
                                  lambda: Recipe.from_dict({"task": "classification", "rungs": []})])
def test_an_empty_ladder_is_refused(make):
    with pytest.raises(RecipeError, match=r"rungs: is empty; name at least one rung \(e\.g\. classical\) or leave it "
                                          r"out for the default ladder"):
        make()


def test_a_ladder_left_out_or_null_is_the_default_one():
    default = Recipe().rungs
    assert [s.name for s in default] == ["classical", "unet2d", "unetpp", "unet3d", "ensemble"]
    assert Recipe.from_yaml(RECIPE_YAML.split("rungs:")[0] + "rungs:\n").rungs == default
    assert Recipe(rungs=None).rungs == default


def test_budget_and_max_vram_are_keywords_of_recipe_as_they_are_yaml_keys():
    recipe = Recipe(budget="10min", max_vram="8GB")
    assert (recipe.budget_s, recipe.max_vram_bytes) == (600.0, 8 * 10**9)
    assert recipe == Recipe.from_dict({"budget": "10min", "max_vram": "8GB"}) == Recipe.from_dict(recipe.to_dict())
    assert "budget" not in recipe.to_dict() and recipe.replace(n_folds=3).budget_s == 600.0
    assert Recipe(budget=90).budget_s == 90.0
    with pytest.raises(RecipeError, match="give either 'budget' or 'budget_s', not both"):
        Recipe(budget="10min", budget_s=5)
    with pytest.raises(RecipeError, match="Cannot read the duration 'soon'"):
        Recipe(budget="soon")


@pytest.mark.parametrize("params, message", [
    ("[1, 2]", r"rung 'classical' params: expected a mapping .* got list \[1, 2\]"),
    ("7", r"rung 'classical' params: expected a mapping .* got int 7"),
    ("lightgbm", r"rung 'classical' params: expected a mapping .* got str 'lightgbm'"),
])
def test_rung_params_that_are_not_a_mapping_are_refused_naming_the_rung(tmp_path, params, message):
    path = tmp_path / "recipe.yaml"
    path.write_text(f"task: segmentation\nrungs:\n  - name: classical\n    params: {params}\n")
    with pytest.raises(RecipeError, match=rf"^{path}: {message}"):
        Recipe.from_yaml(path)


@pytest.mark.parametrize("ending, fix", [("nii.gz", 'write ".nii.gz"'), ("", 'e.g. ".nii.gz"'), (5, 'e.g. ".nii.gz"')])
def test_a_file_ending_without_its_dot_is_refused_with_the_fix(tmp_path, ending, fix):
    from automed.data.dataset import open_dataset

    root = make_nnunet(tmp_path / "data", n_cases=2, shape=(4, 5, 4))
    meta = json.loads((root / "dataset.json").read_text())
    (root / "dataset.json").write_text(json.dumps({**meta, "file_ending": ending}))
    with pytest.raises(DataError, match=rf"dataset\.json: file_ending {ending!r} must be a file suffix with its "
                                        rf"leading dot; {fix}"):
        open_dataset(root)


FIELDS = ["task", "data_format", "metric", "n_folds", "test_fraction", "random_state", "budget_s", "budget",
          "include_background", "colour", "target_spacing", "n_jobs", "folds_file", "cv", "max_vram_bytes",
          "max_vram", "min_gain", "full_ladder", "label_fractions", "ordinal", "class_order", "rungs", "bogus"]
ODD = [None, True, False, 0, -1, 1, 2, 3, 1000, 0.5, -0.3, 1e30, float("nan"), float("inf"), "", "abc", "10min",
       "8GB", "auto", "classification", "classical", [], [1, 2], [0.5, 1.0], ["classical"], ["classical", "classical"],
       ["a", "b"], {}, {"x": 1}, {"name": "classical"}, {"name": "classical", "params": [1]}]


@settings(FUZZ, max_examples=300)  # nothing is fitted: 300 recipes take a few seconds
@given(data=st.data())
def test_a_mutated_recipe_is_refused_or_valid(data):
    import yaml

    values = yaml.safe_load(RECIPE_YAML)
    for _ in range(data.draw(st.integers(1, 3), label="n_edits")):
        edit = data.draw(st.sampled_from(["set", "drop", "rung param", "rung params", "rung entry"]), label="edit")
        rungs = values.get("rungs")
        first = rungs[0] if isinstance(rungs, list) and rungs and isinstance(rungs[0], dict) else None
        if edit == "set":
            values[data.draw(st.sampled_from(FIELDS))] = data.draw(st.sampled_from(ODD))
        elif edit == "drop" and values:
            values.pop(data.draw(st.sampled_from(sorted(values))))
        elif edit == "rung param" and first is not None and isinstance(first.get("params"), dict):
            key = data.draw(st.sampled_from(["num_sigma", "models", "n_trials", "sigma_min", "bogus"]))
            first["params"][key] = data.draw(st.sampled_from(ODD))
        elif edit == "rung params" and first is not None:
            first[data.draw(st.sampled_from(["params", "name", "bogus"]))] = data.draw(st.sampled_from(ODD))
        elif edit == "rung entry" and isinstance(rungs, list) and rungs:
            rungs[data.draw(st.integers(0, len(rungs) - 1))] = data.draw(st.sampled_from(ODD))
    try:
        recipe = Recipe.from_yaml(yaml.safe_dump(values) + "\n")
    except RecipeError as exc:
        assert "\n" not in str(exc).strip(), str(exc)
        return
    assert Recipe.from_dict(recipe.to_dict()) == recipe


# ---------------------------------------------------------------------------------------------
# Workers (n_jobs)
# ---------------------------------------------------------------------------------------------

GIB = 2**30


@pytest.fixture
def machine(monkeypatch):
    """Set the cores and free memory :func:`resolve_n_jobs` sees: ``machine(cores, free_bytes)``."""
    from automed import environment

    environment._warn_once.cache_clear()

    def set_up(cores: int, free: int) -> None:
        monkeypatch.setattr(environment, "n_cores", lambda: cores)
        monkeypatch.setattr(environment, "available_memory_bytes", lambda: free)

    yield set_up
    environment._warn_once.cache_clear()


@pytest.mark.parametrize("requested, cores, free, expected, warning", [
    (1000, 2, 64 * GIB, 2, "n_jobs 1000 asks for 1000 workers; using 2: this process may use 2 core(s)"),
    (16, 32, int(1.2 * GIB), 2, "n_jobs 16 asks for 16 workers; using 2: 1.2 GiB of free memory holds 2 worker(s)"),
    (1000, 4, GIB, 2, "may use 4 core(s) (its CPU affinity and cgroup quota) and 1.0 GiB of free memory holds 2"),
    (-1, 8, 64 * GIB, 8, None),
    (-2, 8, 64 * GIB, 7, None),
    (-8, 8, 64 * GIB, 1, None),
    (3, 8, 64 * GIB, 3, None),
    (-1, 8, 0, 1, "n_jobs -1 asks for 8 workers; using 1: 0.0 GiB of free memory holds 1 worker(s)"),
])
def test_workers_are_capped_at_the_cores_and_memory_with_a_warning(machine, caplog, requested, cores, free, expected,
                                                                   warning):
    from automed.environment import resolve_n_jobs

    machine(cores, free)
    with caplog.at_level(logging.WARNING, logger="automed"):
        assert resolve_n_jobs(requested) == expected
        assert resolve_n_jobs(requested) == expected
    if warning is None:
        assert caplog.text == ""
    else:
        assert warning in caplog.text and caplog.text.count("n_jobs") == 1  # said once, not once per rung


def test_a_negative_n_jobs_that_leaves_no_core_is_refused(machine):
    from automed.environment import resolve_n_jobs

    machine(2, 64 * GIB)
    with pytest.raises(RecipeError, match=r"n_jobs -5 means all cores but 4, and this process may use 2; give -1"):
        resolve_n_jobs(-5)


@pytest.mark.parametrize("n_jobs", [0, 1.5, "4", True, None])
def test_a_nonsense_n_jobs_is_refused_by_the_recipe(n_jobs):
    with pytest.raises(RecipeError, match=r"The 'n_jobs' parameter of Recipe must be a number of workers >= 1, or -1"):
        Recipe(n_jobs=n_jobs)


def test_the_cores_are_those_this_process_may_use_and_the_fit_records_the_capped_number(machine):
    import os

    from joblib import cpu_count

    from automed.environment import n_cores
    from automed.ladder.runner import _n_jobs

    assert n_cores() == cpu_count() <= len(os.sched_getaffinity(0))
    machine(1, 64 * GIB)
    assert _n_jobs(Recipe(n_jobs=1000)) == 1  # the number run.json records and every rung gets


# ---------------------------------------------------------------------------------------------
# Ordinal classes without a class_order
# ---------------------------------------------------------------------------------------------


def _class_folders(root: Path, names: list[str]) -> Path:
    """Two tiny PNG images in a folder per class name."""
    import numpy as np
    import SimpleITK as sitk

    for k, name in enumerate(names):
        for i in range(2):
            (root / name).mkdir(parents=True, exist_ok=True)
            sitk.WriteImage(sitk.GetImageFromArray(np.full((8, 8), 10 * k + i, np.uint8)), str(root / name / f"{i}.png"))
    return root


@pytest.mark.parametrize("names, order", [
    (["grade_10", "grade_2", "grade_1"], ["grade_1", "grade_2", "grade_10"]),
    (["10", "9", "0"], ["0", "9", "10"]),
    (["stage2b", "stage10b", "stage1b"], ["stage1b", "stage2b", "stage10b"]),
])
def test_ordinal_grades_without_a_class_order_take_the_natural_order_and_say_so(tmp_path, caplog, names, order):
    from automed.data.classification import open_classification

    root = _class_folders(tmp_path / "data", names)
    assert open_classification(root).classes == tuple(sorted(names))  # not ordinal: the names sorted as text
    with caplog.at_level(logging.INFO, logger="automed"):
        assert open_classification(root, ordinal=True).classes == tuple(order)
    assert f"ordinal classes, lowest first (the numbers in their names): {order}" in caplog.text
    assert open_classification(root, class_order=tuple(reversed(order)), ordinal=True).classes == tuple(reversed(order))


@pytest.mark.parametrize("names", [["mild", "moderate", "severe"], ["G1", "G2a", "G3"], ["grade_1", "stage_2"],
                                   ["grade_2", "grade_02", "grade_3"], ["normal", "grade_1", "grade_2"]])
def test_ordinal_grades_whose_names_do_not_tell_the_order_ask_for_class_order(tmp_path, names):
    from automed.data.classification import open_classification

    root = _class_folders(tmp_path / "data", names)
    with pytest.raises(DataError, match=rf"^{root}: the ordinal classes .* do not tell their order by a number in one "
                                        r"naming pattern; list them lowest grade first in the recipe's class_order"):
        open_classification(root, ordinal=True)


# ---------------------------------------------------------------------------------------------
# Arguments of the public API
# ---------------------------------------------------------------------------------------------


class _Reached(Exception):
    """Raised by a stand-in for the fit itself: the arguments got through."""


@pytest.fixture
def fit_reached(monkeypatch):
    """``automed.fit`` up to the fit itself, which raises :class:`_Reached` with the recipe it was given."""
    from automed.ladder import runner

    def stand_in(recipe, data, out, **kwargs):
        raise _Reached(recipe)

    monkeypatch.setattr(runner, "fit_run", stand_in)


@pytest.mark.slow  # an end-to-end fit: `make test-all` runs it
@pytest.mark.parametrize("given", ["dict", "yaml path", "yaml str path", "recipe"])
def test_fit_takes_a_recipe_its_dict_or_its_yaml_file(tmp_path, fit_reached, given):
    import automed

    path = tmp_path / "recipe.yaml"
    path.write_text(RECIPE_YAML)
    expected = Recipe.from_yaml(path)
    recipe = {"dict": expected.to_dict(), "yaml path": path, "yaml str path": str(path), "recipe": expected}[given]
    with pytest.raises(_Reached) as reached:
        automed.fit(recipe, tmp_path / "data", tmp_path / "run")
    assert reached.value.args[0] == expected


@pytest.mark.parametrize("recipe, data, out, message", [
    (3, "data", "run", r"automed\.fit: recipe must be an automed\.Recipe, a dict of recipe keys or the path of a "
                       r"YAML recipe; got int\."),
    (None, "data", "run", r"recipe must be .*; got None\."),
    (["classical"], "data", "run", r"recipe must be .*; got list\."),
    ("RECIPE", None, "run", r"automed\.fit: data must be the dataset folder .*, as a str or pathlib\.Path; got None\."),
    ("RECIPE", b"data", "run", r"data must be .*; got bytes \(decode it with os\.fsdecode\)\."),
    ("RECIPE", "data", 7, r"automed\.fit: out must be the run folder to create, as a str or pathlib\.Path; got int\."),
])
def test_fit_arguments_of_the_wrong_type_are_one_sentence(tmp_path, fit_reached, recipe, data, out, message):
    import automed

    with pytest.raises(TypeError, match=rf"{message}$") as caught:
        automed.fit(Recipe() if recipe == "RECIPE" else recipe, data, out)
    assert str(caught.value).startswith("automed.fit: ")
    assert list(tmp_path.iterdir()) == []


def test_fit_with_a_missing_yaml_recipe_or_a_bad_dict_is_a_recipe_error(tmp_path, fit_reached):
    import automed

    with pytest.raises(RecipeError, match=r"nope\.yaml: recipe file not found"):
        automed.fit(str(tmp_path / "nope.yaml"), tmp_path / "data", tmp_path / "run")
    with pytest.raises(RecipeError, match=r"unknown key\(s\) \['n_fold'\]"):
        automed.fit({"n_fold": 3}, tmp_path / "data", tmp_path / "run")


@pytest.mark.parametrize("inputs, out, message", [
    ("images", None, r"Run\.predict: out must be the masks folder \(segmentation\) or CSV file \(classification\) to "
                     r"write, as a str or pathlib\.Path; got None\."),
    (b"images", "pred", r"Run\.predict: inputs must be an image file, a folder of images or a list of image files, "
                        r"as a str or pathlib\.Path; got bytes \(decode it with os\.fsdecode\)\."),
    ("ARRAY", "pred", r"inputs must be .*; got numpy\.ndarray; write an array in memory to an image file first\."),
    (["a.png", 3], "pred", r"inputs must be .*; got int\."),
    (None, "pred", r"inputs must be .*; got None\."),
])
def test_predict_arguments_of_the_wrong_type_are_one_sentence(tmp_path, inputs, out, message):
    import numpy as np

    import automed

    run = automed.Run(tmp_path / "run")
    with pytest.raises(TypeError, match=rf"{message}$") as caught:
        run.predict(np.zeros((4, 4)) if inputs == "ARRAY" else inputs, out)
    assert str(caught.value).startswith("Run.predict: ")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# 8-bit and 16-bit colour photographs in one dataset
# ---------------------------------------------------------------------------------------------


def test_8_and_16_bit_colour_photographs_in_one_dataset_are_scaled_alike(tmp_path):
    import numpy as np
    import SimpleITK as sitk

    from automed.data.dataset import open_dataset
    from automed.data.fingerprint import compute_fingerprint
    from automed.data.io import read_image
    from automed.data.loading import load_case
    from automed.data.normalize import normalize

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (16, 18, 3)).astype(np.uint8)
    label = np.zeros((16, 18), np.uint8)
    label[4:10, 5:12] = 1
    for name, pixels in (("eight", rgb), ("sixteen", rgb.astype(np.uint16) * 257)):
        (tmp_path / "images").mkdir(exist_ok=True)
        (tmp_path / "labels").mkdir(exist_ok=True)
        sitk.WriteImage(sitk.GetImageFromArray(pixels, isVector=True), str(tmp_path / "images" / f"{name}.png"))
        sitk.WriteImage(sitk.GetImageFromArray(label), str(tmp_path / "labels" / f"{name}.png"))
    eight, sixteen = (read_image(tmp_path / "images" / f"{n}.png", colour=True) for n in ("eight", "sixteen"))
    assert sixteen.colour and np.allclose(eight.array, sixteen.array, atol=1e-3)
    grey8, grey16 = (read_image(tmp_path / "images" / f"{n}.png").array for n in ("eight", "sixteen"))
    assert np.allclose(grey8, grey16, atol=1e-3)
    dataset = open_dataset(tmp_path, colour=True)
    fingerprint = compute_fingerprint(dataset, target_spacing=None)
    normalized = [normalize(load_case(c, fingerprint.n_channels, dataset.channels_in_one_file).image, fingerprint)
                  for c in dataset.cases]
    assert np.allclose(normalized[0], normalized[1], atol=1e-5) and 0.9 < normalized[0].max() <= 1.0
