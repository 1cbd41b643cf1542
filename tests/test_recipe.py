from pathlib import Path

import pytest

from automed.errors import RecipeError
from automed.recipe import Recipe, RungSpec, parse_duration, parse_size

RECIPES = sorted((Path(__file__).parents[1] / "recipes").glob("*.yaml"))


def test_defaults_are_resolved():
    recipe = Recipe()
    assert recipe.rungs[0].name == "classical"
    assert recipe.rungs[0].params.n_samples_per_class > 0


def test_yaml_round_trip(tmp_path):
    recipe = Recipe(task="segmentation", n_folds=3, random_state=7, budget_s=600,
                    rungs=[{"name": "classical", "params": {"num_sigma": 3, "models": ["lightgbm"]}}])
    path = tmp_path / "r.yaml"
    recipe.to_yaml(path)
    assert Recipe.from_yaml(path) == recipe


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_shipped_recipes_load_and_round_trip(path):
    recipe = Recipe.from_yaml(path)
    assert Recipe.from_yaml(recipe.to_yaml()) == recipe


def test_shipped_recipes_exist():
    assert len(RECIPES) >= 2


def test_budget_alias():
    assert Recipe.from_dict({"budget": "10min"}).budget_s == 600


@pytest.mark.parametrize("text, seconds", [("90", 90), ("90s", 90), ("10min", 600), ("2h", 7200), (5, 5.0)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


def test_default_segmentation_ladder_and_memory_alias():
    assert [s.name for s in Recipe().rungs] == ["classical", "unet2d", "unetpp", "unet3d", "ensemble"]
    assert Recipe.from_dict({"max_vram": "8GB"}).max_vram_bytes == 8 * 10**9
    assert parse_size("512MiB") == 512 * 2**20 and parse_size(None) is None
    with pytest.raises(RecipeError, match="Cannot read the memory size 'lots'"):
        parse_size("lots")


def test_invalid_deep_rung_param_value():
    with pytest.raises(RecipeError, match="The 'losses' parameter of a deep rung must be one of"):
        Recipe(rungs=[{"name": "unet2d", "params": {"losses": ["mse"]}}])
    with pytest.raises(RecipeError, match="'widths' and 'depths' parameters of a deep rung need at least one"):
        Recipe(rungs=[{"name": "unet3d", "params": {"widths": []}}])
    for rung, owner in (("cnn", "a deep classification rung"), ("vgg16", "a transfer rung")):
        with pytest.raises(RecipeError, match=f"The 'n_models' parameter of {owner} must be a number >= 1"):
            Recipe(task="classification", rungs=[{"name": rung, "params": {"n_models": 0}}])


def test_parse_duration_rejects_garbage():
    with pytest.raises(RecipeError, match="Cannot read the duration 'soon'"):
        parse_duration("soon")


def test_unknown_top_level_key():
    with pytest.raises(RecipeError, match=r"unknown key\(s\) \['n_fold'\]"):
        Recipe.from_dict({"n_fold": 3})


def test_unknown_rung_param():
    with pytest.raises(RecipeError, match=r"rung 'classical' params: unknown key\(s\) \['sigmas'\]"):
        Recipe.from_dict({"rungs": [{"name": "classical", "params": {"sigmas": [1, 2]}}]})


def test_unknown_rung():
    with pytest.raises(RecipeError, match="Unknown rung 'unet9d' for task 'segmentation'"):
        Recipe(rungs=[RungSpec("unet9d")])


def test_rung_params_follow_the_task():
    seg = Recipe(task="segmentation").rungs[0].params
    cls = Recipe(task="classification").rungs[0].params
    assert type(seg) is not type(cls)
    assert Recipe(task="classification").metric == "auc" and Recipe().metric == "dice"


def test_metric_must_suit_the_task():
    with pytest.raises(RecipeError, match="The 'metric' parameter of Recipe must be one of \\['dice'\\]"):
        Recipe(task="segmentation", metric="auc")


@pytest.mark.parametrize("changes, message", [
    ({"task": "detection"}, "The 'task' parameter of Recipe must be one of"),
    ({"n_folds": 1}, "The 'n_folds' parameter of Recipe must be a number >= 2"),
    ({"n_folds": 2.5}, "The 'n_folds' parameter of Recipe must be an int"),
    ({"n_jobs": 0}, "The 'n_jobs' parameter of Recipe must be a number of workers >= 1, or -1 for all cores"),
    ({"data_format": "dicomweb"}, "The 'data_format' parameter of Recipe must be one of"),
    ({"task": "segmentation", "data_format": "medmnist"}, "The 'data_format' parameter of Recipe must be one of"),
    ({"test_fraction": 0.9}, "The 'test_fraction' parameter of Recipe must be a number in"),
    ({"cv": "loo"}, "The 'cv' parameter of Recipe must be one of"),
    ({"max_vram_bytes": 10}, "The 'max_vram_bytes' parameter of Recipe must be a number >="),
    ({"full_ladder": "yes"}, "The 'full_ladder' parameter of Recipe must be true or false"),
])
def test_invalid_values(changes, message):
    with pytest.raises(RecipeError, match=message):
        Recipe(**changes)


def test_invalid_rung_param_value():
    with pytest.raises(RecipeError, match="The 'models' parameter of the classical rung must be one of"):
        Recipe(rungs=[{"name": "classical", "params": {"models": ["xgboost"]}}])


def test_recipe_is_frozen():
    with pytest.raises(AttributeError):
        Recipe().n_folds = 3


def test_yaml_errors_name_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("task: [unclosed\n")
    with pytest.raises(RecipeError, match="bad.yaml: not valid YAML"):
        Recipe.from_yaml(path)
    with pytest.raises(RecipeError, match="missing.yaml: recipe file not found"):
        Recipe.from_yaml(tmp_path / "missing.yaml")


def test_a_recipe_picks_its_rungs_keeping_their_parameters():
    recipe = Recipe(rungs=[{"name": "classical", "params": {"models": ["random_forest"]}}, "unet2d"])
    picked = recipe.with_rungs(["unet2d", "classical", "unet3d"])
    assert [s.name for s in picked.rungs] == ["unet2d", "classical", "unet3d"]
    assert picked.rungs[1].params.models == ("random_forest",) and picked.rungs[2].params == Recipe(
        rungs=["unet3d"]).rungs[0].params
    with pytest.raises(RecipeError, match="names no rung"):
        recipe.with_rungs([])
    with pytest.raises(RecipeError, match="Unknown rung 'unet9d'"):
        recipe.with_rungs(["unet9d"])


def test_a_recipe_sets_one_rungs_parameters_and_the_transfer_rungs_weights(tmp_path):
    recipe = Recipe(task="classification", rungs=["classical", "ssl", "vgg16", "inception_v3"])
    assert recipe.with_rung_params("ssl", unlabeled=str(tmp_path)).rungs[1].params.unlabeled == str(tmp_path)
    with pytest.raises(RecipeError, match=r"applies to the ssl rung, which this ladder \(classical\) does not climb"):
        Recipe(task="classification", rungs=["classical"]).with_rung_params("ssl", unlabeled=str(tmp_path))
    weights = recipe.with_pretrained_weights({"vgg16": "v.pth", None: "any.pth"})
    assert [getattr(s.params, "weights", None) for s in weights.rungs] == [None, None, "v.pth", "any.pth"]
    with pytest.raises(RecipeError, match=r"names \['ssl'\], not transfer rungs"):
        recipe.with_pretrained_weights({"ssl": "v.pth"})
    with pytest.raises(RecipeError, match="applies to the transfer rungs"):
        Recipe(task="classification", rungs=["classical", "cnn"]).with_pretrained_weights({None: "v.pth"})
