"""Fixed folds read from a JSON file (nnU-Net's splits_final.json layout)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import automed
from automed.cli import main
from automed.data.splits import read_folds
from automed.errors import DataError, RecipeError
from conftest import make_msd

IDS = ["a", "b", "c", "d"]


def _file(tmp_path, folds):
    path = tmp_path / "splits_final.json"
    path.write_text(json.dumps(folds))
    return path



@pytest.mark.parametrize("folds, message", [
    ({"train": IDS}, "a list of two or more"),
    ([{"train": ["a", "b"], "val": ["c"]}], "a list of two or more"),
    ([{"train": ["a", "b"], "val": ["x"]}, {"train": ["c"], "val": ["d"]}], "fold 0 names case(s) ['x']"),
    ([{"train": ["a", "b"], "val": ["b"]}, {"train": ["c"], "val": ["d"]}], "in both train and val"),
    ([{"train": ["a", "b"], "val": []}, {"train": ["c"], "val": ["d"]}], "fold 0 has no validation case"),
    ([{"train": ["a", "b"], "val": ["c"]}, {"train": ["a", "c"], "val": ["b"]}], "patient group(s) ['p1']"),
])
def test_a_bad_folds_file_is_refused_naming_the_file_and_the_fold(tmp_path, folds, message):
    path = _file(tmp_path, folds)
    with pytest.raises(DataError, match=r"splits_final\.json") as caught:
        read_folds(path, IDS, [None, "p1", "p1", None])
    assert message in str(caught.value)


@pytest.mark.slow  # an end-to-end fit: `make test-all` runs it
def test_a_fit_is_judged_on_the_folds_of_the_file(tmp_path):
    data = make_msd(tmp_path / "data", n_cases=6)
    ids = sorted(p.name.removesuffix(".nii.gz") for p in (data / "imagesTr").iterdir())
    folds = [{"train": ids[2:], "val": ids[:2]}, {"train": ids[:2] + ids[4:], "val": ids[2:4]}]
    path = _file(tmp_path, folds)
    cli = CliRunner().invoke(main, ["fit", str(data), "--out", str(tmp_path / "run"), "--folds-file", str(path),
                                    "--rungs", "classical", "--jobs", "1", "--quiet"])
    assert cli.exit_code == 0, cli.output
    run = automed.load(tmp_path / "run")
    splits = json.loads((run.folder / "splits.json").read_text())
    assert splits["folds"] == [{"train": sorted(f["train"]), "val": f["val"]} for f in folds]
    assert splits["n_folds"] == 2 and splits["folds_file"] == str(path.resolve())
    assert automed.Recipe.from_yaml(run.folder / "recipe.yaml").n_folds == 2
    result = json.loads((run.folder / "rungs/classical/result.json").read_text())
    assert {c["case_id"] for c in result["per_case"]} == set(ids[:4])  # the files' validation cases, no others


def test_folds_file_is_for_segmentation():
    with pytest.raises(RecipeError, match="folds_file"):
        automed.Recipe(task="classification", folds_file="splits.json")
