"""The segmentation learning curve: nested subsets of fold 0's training cases, scored on its validation cases, and
the fitted estimate of what doubling the labels would gain."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

import automed
from automed.data.splits import training_subset
from automed.ladder.learning_curve import doubling_estimate
from conftest import FAST_PARAMS, make_folders_2d


def test_training_subsets_are_nested_keep_groups_and_the_validation_cases():
    splits = {"folds": [{"train": [f"c{i}" for i in range(20)], "val": ["v1", "v2"]}, {"train": [], "val": []}]}
    groups = {f"c{i}": f"p{i // 2}" for i in range(20)}  # two cases per patient
    small, large = (training_subset(splits, f, groups, 0) for f in (0.25, 0.5))
    assert set(small["dev"]) < set(large["dev"]) and len(large["dev"]) == 10
    assert all(f"c{2 * (int(c[1:]) // 2)}" in small["dev"] and f"c{2 * (int(c[1:]) // 2) + 1}" in small["dev"]
               for c in small["dev"])  # whole patients
    assert small["folds"] == [{"train": small["dev"], "val": ["v1", "v2"]}] and small["n_folds"] == 1


def test_doubling_estimate_recovers_a_power_law():
    points = [{"n_dev": n, "metric": {"mean": 1 - 0.5 * n ** -0.5, "ci_low": 1 - 0.5 * n ** -0.5 - 0.01,
                                      "ci_high": 1 - 0.5 * n ** -0.5 + 0.01}} for n in (10, 20, 40, 80)]
    estimate = doubling_estimate(points)
    truth = 0.5 * 80 ** -0.5 - 0.5 * 160 ** -0.5
    assert abs(estimate["gain"] - truth) < 1e-9 and abs(estimate["exponent"] - 0.5) < 1e-9
    assert estimate["ci_low"] < truth < estimate["ci_high"] and estimate["n"] == 80
    assert doubling_estimate(points[:2]) is None


def test_label_fractions_draw_a_segmentation_learning_curve(tmp_path):
    data = make_folders_2d(tmp_path / "em", n_cases=10)
    rng = np.random.default_rng(0)
    for image in (data / "images").iterdir():  # noisy enough that fewer labels score lower
        pixels = np.asarray(Image.open(image), dtype=float)
        Image.fromarray(np.clip(pixels + rng.normal(0, 45, pixels.shape), 0, 255).astype(np.uint8)).save(image)
    recipe = automed.Recipe(task="segmentation", n_folds=2, n_jobs=1, label_fractions=(0.4, 0.7, 1.0),
                            rungs=[{"name": "classical", "params": FAST_PARAMS}])
    run = automed.fit(recipe, data, tmp_path / "run", progress=False)
    curve = json.loads((run.folder / "learning_curve.json").read_text())
    points = curve["rungs"]["classical"]
    assert [p["n_dev"] for p in points] == [2, 4, 5]  # of fold 0's 5 training cases
    assert [p["metric"]["n"] for p in points] == [5, 5, 5]  # the same 5 validation cases of fold 0
    assert curve["cases"] == "validation cases of fold 0"
    assert np.isfinite(curve["doubling"]["classical"]["gain"])
    markdown = (run.folder / "report.md").read_text()
    assert "## Learning curve" in markdown and "More labels or a bigger model?" in markdown
    assert (run.folder / "learning_curve.png").is_file()
