"""Several annotators: the layouts, the consensus, bad input naming the file, and the agreement the run reports."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

import automed
from automed.data.consensus import consensus_label
from automed.data.dataset import open_dataset
from automed.data.loading import load_case
from automed.errors import DataError, RecipeError
from conftest import FAST_PARAMS, blob_case, write

RATERS = ("anna", "ben", "cleo")


def make_raters_2d(root: Path, n_cases: int = 8, shape: tuple[int, int] = (32, 32), seed: int = 0,
                   folders: dict[str, str] | None = None) -> Path:
    """images/ and one mask folder per rater (default ``labels_<rater>/``): ben's masks are one pixel wider than
    anna's, cleo's one pixel narrower, on blob images."""
    rng = np.random.default_rng(seed)
    folders = folders or {r: f"labels_{r}" for r in RATERS}
    for i in range(n_cases):
        image, label = blob_case(shape, rng, n_classes=2)
        write(np.clip(image, 0, 255).astype(np.uint8), root / "images" / f"{i}.png")
        masks = {"anna": label, "ben": ndimage.binary_dilation(label), "cleo": ndimage.binary_erosion(label)}
        for rater, folder in folders.items():
            write((masks[rater] * 255).astype(np.uint8), root / folder / f"{i}.png")
    return root


def test_rater_folders_beside_images_are_found(tmp_path):
    dataset = open_dataset(make_raters_2d(tmp_path / "d"))
    assert dataset.format == "folders" and len(dataset.cases) == 8
    assert [name for name, _ in dataset.cases[0].raters] == list(RATERS)
    assert dataset.cases[0].label_path is None and dataset.cases[0].labelled


def test_the_labels_folder_counts_as_one_more_rater(tmp_path):
    root = make_raters_2d(tmp_path / "d", folders={"anna": "labels", "ben": "labels_ben"})
    assert [name for name, _ in open_dataset(root).cases[0].raters] == ["labels", "ben"]


def test_rater_folders_named_by_patterns(tmp_path):
    root = make_raters_2d(tmp_path / "d", folders={"anna": "experts/p1", "ben": "experts/p2", "cleo": "other/p3"})
    dataset = open_dataset(root, raters=("experts/*", "other/p3"), consensus="majority")
    assert [name for name, _ in dataset.cases[0].raters] == ["experts/p1", "experts/p2", "other/p3"]
    assert dataset.cases[0].consensus == "majority"
    with pytest.raises(DataError, match=r"the rater pattern 'nobody/\*' matches no folder"):
        open_dataset(root, raters=("nobody/*",))


def test_consensus_rules():
    anna = np.array([[0, 1, 1, 0]])
    ben = np.array([[0, 1, 1, 1]])
    cleo = np.array([[1, 1, 0, 0]])
    masks = {"anna": anna, "ben": ben, "cleo": cleo}
    assert consensus_label(masks, "majority").tolist() == [[0, 1, 1, 0]]
    assert consensus_label(masks, "rater:cleo").tolist() == cleo.tolist()
    _, blob = blob_case((40, 40), np.random.default_rng(0), n_classes=3)
    wide = np.where(ndimage.binary_dilation(blob > 0) & (blob == 0), 1, blob)
    raters = {"anna": blob, "ben": blob.copy(), "cleo": wide}
    staple = consensus_label(raters, "staple")
    assert set(np.unique(staple)) == {0, 1, 2}  # several classes: the multi-label STAPLE
    assert (staple == blob).mean() > 0.97
    binary = {k: (v > 0).astype(int) for k, v in raters.items()}
    assert ((consensus_label(binary, "staple") > 0) == (blob > 0)).mean() > 0.97


def test_the_consensus_is_the_label_a_case_is_read_with(tmp_path):
    dataset = open_dataset(make_raters_2d(tmp_path / "d"), consensus="rater:ben")
    case = dataset.cases[0]
    ben = load_case(replace(case, raters=(), label_path=case.raters[1][1]), 1).label
    assert (load_case(case, 1).label == ben).all()
    majority = load_case(replace(case, consensus="majority"), 1).label
    anna = load_case(replace(case, raters=(), label_path=case.raters[0][1]), 1).label
    assert (majority == anna).all()  # ben's wider and cleo's narrower masks vote for anna's


def test_bad_rater_folders_are_refused_naming_the_file(tmp_path):
    root = make_raters_2d(tmp_path / "missing")
    (root / "labels_ben" / "3.png").unlink()
    with pytest.raises(DataError, match=r"3\.png: image without mask of rater 'ben'"):
        open_dataset(root)
    root = make_raters_2d(tmp_path / "extra")
    shutil.copy(root / "labels_cleo" / "0.png", root / "labels_cleo" / "99.png")
    with pytest.raises(DataError, match=r"labels_cleo/99\.png: mask of rater 'cleo' without image"):
        open_dataset(root)
    root = make_raters_2d(tmp_path / "shape")
    write(np.zeros((30, 32), np.uint8), root / "labels_anna" / "2.png")
    dataset = open_dataset(root)
    with pytest.raises(DataError, match=r"labels_anna/2\.png: shape \(30, 32\) does not match image \(32, 32\)"):
        load_case(dataset.cases[2], 1)
    with pytest.raises(DataError, match=r"consensus 'rater:zoe' names no rater of this dataset"):
        open_dataset(make_raters_2d(tmp_path / "name"), consensus="rater:zoe")


def test_the_recipe_checks_the_rater_options():
    with pytest.raises(RecipeError, match="'consensus' parameter of Recipe must be 'staple', 'majority' or"):
        automed.Recipe(consensus="mean")
    with pytest.raises(RecipeError, match="'raters' parameter of Recipe applies to segmentation only"):
        automed.Recipe(task="classification", raters=["experts/*"])


def test_a_fit_reports_the_raters_agreement_beside_each_rung(tmp_path):
    root = make_raters_2d(tmp_path / "d", n_cases=8)
    recipe = automed.Recipe(task="segmentation", n_folds=2, n_jobs=1, consensus="majority",
                            rungs=[{"name": "classical", "params": FAST_PARAMS}])
    run = automed.fit(recipe, root, tmp_path / "run", progress=False)
    record = json.loads((tmp_path / "run" / "raters.json").read_text())
    assert record["raters"] == list(RATERS) and record["consensus"] == "majority" and record["n_cases"] == 8
    inter = record["inter_rater"]["metric"]
    assert 0.5 < inter["mean"] < 1.0 and inter["n"] == 8
    classical = record["rungs"]["classical"]
    assert set(classical["vs_rater"]) == set(RATERS) and classical["n_cases"] == 8
    # the wider rater and the narrower one disagree most: anna, in between, agrees best with the others
    others = record["rater_vs_others"]
    assert others["anna"]["mean"] > others["ben"]["mean"] and others["anna"]["mean"] > others["cleo"]["mean"]
    assert run.report_["raters"]["consensus"] == "majority"
    markdown = (tmp_path / "run" / "report.md").read_text()
    assert "## Several annotators" in markdown and "agrees with the raters at" in markdown
    assert "Each rater against the others" in (tmp_path / "run" / "report.html").read_text()
    audit = run.audit()  # the raters' agreement is evidence of each case's label
    assert all(0.5 < c.evidence["inter_rater_dice"] < 1.0 for c in audit.cases)
