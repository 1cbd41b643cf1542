"""Options and recipes as users write them: budgets too small for any rung, rungs that do not exist, strings
where lists go, seeds out of range, options a command would ignore, a key given twice."""

from __future__ import annotations

import numpy as np
import pytest

import automed
from automed.errors import RecipeError
from cli_checks import fails
from conftest import make_msd, make_npz


@pytest.mark.parametrize("task", ["segmentation", "classification"])
def test_budget_too_small_is_said_up_front(tmp_path, task):
    data = make_msd(tmp_path / "data", n_cases=6) if task == "segmentation" else make_npz(tmp_path / "toy.npz")
    fails(["fit", "--task", task, str(data), "--out", str(tmp_path / "run"), "--budget", "1s", "--rungs", "classical",
            "--folds", "2", "--quiet"], r"budget \(1 s left\) is too small to fit anything: the classical rung needs at "
                                        r"least \d+ s on this data, shrunk as far as it goes", data)
    assert not (tmp_path / "run").exists() and not (tmp_path / ".run.partial").exists()


def test_budget_whose_shares_hold_no_rung_is_refused_with_the_budget_that_would(tmp_path):
    data = make_msd(tmp_path / "data", n_cases=6)
    fails(["fit", str(data), "--out", str(tmp_path / "run"), "--budget", "20s", "--rungs", "classical,unet2d",
           "--folds", "2", "--quiet"], r"The budget \(20 s\) is too small to fit any rung of this ladder: every rung "
                                        r"was skipped .* the cheapest, classical, would need a budget of about \d+min "
                                        r"for its share\. Give a budget of at least \d+min", data)
    assert not (tmp_path / "run").exists() and not (tmp_path / ".run.partial").exists()


def test_rungs_option_naming_no_rung(tmp_path):
    data = make_msd(tmp_path / "data", n_cases=4)
    fails(["fit", str(data), "--out", str(tmp_path / "run"), "--rungs", ",", "--quiet"], r"--rungs ',' names no rung",
           data, exit_code=2)


@pytest.mark.parametrize("text, message", [
    ("rungs:\n- name: classical\n  params: {models: lightgbm}\n",
     r"the 'models' parameter must be a list, e.g. \[lightgbm\] .*Got 'lightgbm' instead"),
    ("rungs: classical\n", r"The 'rungs' parameter of Recipe must be a list, e.g. \['classical'\]\. Got 'classical' instead"),
])
def test_recipe_string_where_a_list_is_expected(tmp_path, text, message):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(text)
    data = make_msd(tmp_path / "data", n_cases=4)
    fails(["fit", "--recipe", str(recipe), str(data), "--out", str(tmp_path / "run"), "--quiet"],
           rf"recipe.yaml: .*{message}", data)


def test_numbers_in_messages_read_as_written():
    with pytest.raises(RecipeError, match=r"Got 1.5 instead"):
        automed.Recipe(min_gain=np.float64(1.5))


@pytest.mark.parametrize("seed", ["-1", "99999999999999999999"])
def test_seed_out_of_range(tmp_path, seed):
    data = make_msd(tmp_path / "data", n_cases=4)
    fails(["fit", str(data), "--out", str(tmp_path / "run"), "--seed", seed, "--quiet"],
           r"'random_state' parameter of Recipe must be an int in \[0, 2\*\*32 - 1\]", data)


def test_options_that_would_be_ignored(tmp_path, fitted_run):
    data = make_msd(tmp_path / "data", n_cases=4)
    fails(["fit", "--resume", str(tmp_path / "run"), "--rungs", "classical", "--budget", "1h"],
           r"--resume takes only the run folder \(and --storage, --dask, --quiet\); --rungs, --budget cannot ", data, exit_code=2)
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"")
    fails(["fit", str(data), "--out", str(tmp_path / "run"), "--rungs", "classical", "--pretrained-weights",
            str(weights)], r"--pretrained-weights '.*w.pth' applies to the transfer rungs", data, exit_code=2)
    fails(["fit", "--task", "classification", str(data), "--out", str(tmp_path / "run"), "--rungs", "vgg16",
            "--pretrained-weights", str(tmp_path / "missing.pth")], r"missing.pth: file not found", data, exit_code=2)


def test_recipe_key_given_twice(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("n_folds: 3\nseed_note: x\nn_folds: 5\n")
    data = make_msd(tmp_path / "data", n_cases=4)
    fails(["fit", "--recipe", str(recipe), str(data), "--out", str(tmp_path / "run"), "--quiet"],
          r"recipe.yaml: not valid YAML \(the key 'n_folds' is given twice", data)
