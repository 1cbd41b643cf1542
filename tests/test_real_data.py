"""Slow end-to-end checks on real data (run with `make test-all` or `pytest -m slow`)."""

from pathlib import Path

import pytest

import automed

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "hippocampus"
SHARED = ROOT.parent / "shared" / "data"
KVASIR_CLASSICAL_DICE = 0.25  # measured 0.391 [0.272, 0.512] (4-fold, 2 trials, 2 cores): polyps defeat pixel features


@pytest.mark.slow
def test_shipped_hippocampus_examples(tmp_path):
    recipe = automed.Recipe(n_folds=3, rungs=[{"name": "classical", "params": {"n_trials": 2, "models": ["lightgbm"]}}])
    run = automed.fit(recipe, EXAMPLES, tmp_path / "run", progress=False)
    rung = run.report_["rungs"][0]
    assert rung["per_class"]["Anterior"]["dice_mean"] > 0.75
    assert rung["per_class"]["Posterior"]["dice_mean"] > 0.75
    masks = run.predict(EXAMPLES / "imagesTr", tmp_path / "pred")
    assert len(masks) == 30


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "isbi2012_em").is_dir(), reason="../shared/data/isbi2012_em not present")
def test_isbi_em_subset(tmp_path):
    import shutil

    data = tmp_path / "em"
    for sub in ("images", "labels"):
        (data / sub).mkdir(parents=True)
        for i in range(8):
            shutil.copy(SHARED / "isbi2012_em" / sub / f"{i}.png", data / sub / f"{i}.png")
    recipe = automed.Recipe.from_yaml(ROOT / "recipes" / "microscopy-2d.yaml").replace(n_folds=2)
    run = automed.fit(recipe, data, tmp_path / "run", progress=False)
    per_class = run.report_["rungs"][0]["per_class"]
    assert per_class["background"]["dice_mean"] > 0.6  # the membrane
    assert per_class["label_255"]["dice_mean"] > 0.85  # cell interior


@pytest.mark.slow
def test_shipped_breastmnist(tmp_path):
    recipe = automed.Recipe.from_yaml(ROOT / "recipes" / "medmnist-2d-classification.yaml")
    recipe = recipe.replace(rungs=[{"name": "classical", "params": {"n_trials": 6, "models": ["lightgbm", "logistic"]}}])
    run = automed.fit(recipe, ROOT / "examples" / "medmnist" / "breastmnist.npz", tmp_path / "run", progress=False)
    assert run.report_["rungs"][0]["test"]["auc"]["mean"] > 0.85


@pytest.mark.slow
def test_shipped_kvasir_colour_examples(tmp_path, caplog):
    """Colour endoscopy with JPEG masks: read as R, G, B, masks thresholded with a warning."""
    data = ROOT / "examples" / "kvasir_seg"
    recipe = automed.Recipe(n_folds=4, rungs=[{"name": "classical", "params": {"n_trials": 2, "models": ["lightgbm"]}}])
    run = automed.fit(recipe, data, tmp_path / "run", progress=False)
    assert run.report_["dataset"]["n_channels"] == 3
    assert "masks were corrected while reading" in caplog.text
    assert run.report_["rungs"][0]["metric"]["mean"] > KVASIR_CLASSICAL_DICE
    assert len(run.predict(data / "images", tmp_path / "pred")) == 16
