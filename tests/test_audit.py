"""automed audit: corrupted labels rank high, clean data is flagged little, the records, the CLI and bad input."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from click.testing import CliRunner

import automed
from automed.audit.records import AUDIT_CSV, AUDIT_JSON, Audit, SuspectCase, read_audit, write_audit
from automed.robust import robust_z
from automed.cli import main
from automed.errors import RunFolderError
from conftest import FAST_CLASSIFICATION, FAST_PARAMS, make_msd, make_npz

N_FLIPPED = 6


@pytest.fixture(scope="module")
def corrupted_classification(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, set[str], dict[str, str]]:
    """A disc dataset with 6 training labels flipped, a training image copied into the test split (a leak) and
    another copied within training under the other label; fitted with the fast classical rung."""
    root = tmp_path_factory.mktemp("audit_classification")
    data = make_npz(root / "discs.npz", seed=3, sizes=(120, 20, 40))
    with np.load(data) as z:
        arrays = {k: z[k].copy() for k in z.files}
    rng = np.random.default_rng(1)
    flipped = rng.choice(np.arange(10, 120), N_FLIPPED, replace=False)
    arrays["train_labels"][flipped] = 1 - arrays["train_labels"][flipped]
    arrays["test_images"][0] = arrays["train_images"][0]
    arrays["test_labels"][0] = arrays["train_labels"][0]
    arrays["train_images"][1] = arrays["train_images"][2]
    arrays["train_labels"][1] = 1 - arrays["train_labels"][2]
    np.savez(data, **arrays)
    # logistic regression: its out-of-fold probabilities vary smoothly (a small LightGBM's may be two values)
    recipe = automed.Recipe(task="classification", n_folds=3, n_jobs=1,
                            rungs=[{"name": "classical", "params": {**FAST_CLASSIFICATION, "models": ["logistic"]}}])
    automed.fit(recipe, data, root / "run", progress=False)
    planted = {"leak": "train_0", "conflict": "train_1"}
    return root / "run", {f"train_{i}" for i in flipped}, planted


def test_flipped_labels_rank_first_and_planted_duplicates_are_named(corrupted_classification):
    folder, flipped, planted = corrupted_classification
    audit = automed.load(folder).audit()
    top = [c.case_id for c in audit.cases[:2 * N_FLIPPED]]
    assert len(flipped & set(top)) >= N_FLIPPED - 1, (top, flipped)
    by_id = {c.case_id: c for c in audit.cases}
    assert any("a leak between the splits" in r for r in by_id[planted["leak"]].reasons)
    assert any("test_0" in r for r in by_id[planted["leak"]].reasons)
    assert any("labelled" in r and "train_2" in r for r in by_id[planted["conflict"]].reasons)
    assert "classical" in audit.source and "out-of-fold" in audit.source
    flagged_clean = {c.case_id for c in audit.suspects} - flipped - {"train_0", "train_1", "train_2", "test_0"}
    assert len(flagged_clean) <= 0.05 * len(audit.cases), flagged_clean
    # a test case's metric without it is the test metric re-scored; a training case's, the out-of-fold one
    assert by_id["test_0"].metric_scope.startswith("classical test auc")
    assert next(iter(flipped)) in by_id and by_id[next(iter(flipped))].metric_scope.startswith("classical out-of-fold")
    assert audit.excluding_top[0]["k"] == 0 and audit.excluding_top[0]["n"] == 40


def test_clean_classification_flags_little(fitted_classification_run, tmp_path):
    folder = shutil.copytree(fitted_classification_run, tmp_path / "run")
    audit = automed.load(folder).audit()
    assert len(audit.cases) == 68
    assert len(audit.suspects) <= 0.1 * len(audit.cases), [c.reasons for c in audit.suspects]


@pytest.fixture(scope="module")
def corrupted_segmentation(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """A 3D blob dataset of 12 cases: one label with a structure deleted, one with the classes swapped."""
    root = tmp_path_factory.mktemp("audit_segmentation")
    data = make_msd(root / "data", n_cases=12, seed=2)
    for name, change in (("case_004", lambda a: np.where(a == 2, 0, a)),
                         ("case_009", lambda a: np.where(a == 1, 2, np.where(a == 2, 1, 0)))):
        path = data / "labelsTr" / f"{name}.nii.gz"
        image = sitk.ReadImage(str(path))
        changed = sitk.GetImageFromArray(change(sitk.GetArrayFromImage(image)).astype(np.uint8))
        changed.CopyInformation(image)
        sitk.WriteImage(changed, str(path))
    recipe = automed.Recipe(task="segmentation", n_folds=3, n_jobs=1,
                            rungs=[{"name": "classical", "params": FAST_PARAMS}])
    automed.fit(recipe, data, root / "run", progress=False)
    return root / "run", "case_004", "case_009"


def test_corrupted_segmentation_labels_rank_first(corrupted_segmentation):
    folder, deleted, swapped = corrupted_segmentation
    audit = automed.load(folder).audit()
    assert {c.case_id for c in audit.cases[:2]} == {deleted, swapped}
    assert {deleted, swapped} <= {c.case_id for c in audit.suspects}
    by_id = {c.case_id: c for c in audit.cases}
    assert any("right" in r for r in by_id[deleted].reasons)
    assert by_id[deleted].evidence["label_disagreement"] > 0.3
    assert len(audit.suspects) <= 4
    assert any("one rung saved masks" in note for note in audit.left_out)


def test_clean_segmentation_flags_little(fitted_run, tmp_path):
    folder = shutil.copytree(fitted_run, tmp_path / "run")
    audit = automed.load(folder).audit()
    assert len(audit.cases) == 10
    assert len(audit.suspects) <= 1, [c.reasons for c in audit.suspects]


def test_cli_writes_the_audit_into_the_run_and_its_report(fitted_classification_run, tmp_path):
    folder = shutil.copytree(fitted_classification_run, tmp_path / "run")
    result = CliRunner().invoke(main, ["audit", str(folder)])
    assert result.exit_code == 0, result.output
    assert "cases" in result.output and str(folder / "audit" / AUDIT_CSV) in result.output
    with (folder / "audit" / AUDIT_CSV).open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 68 and rows[0]["rank"] == "1"
    assert {"case", "split", "score", "suspect", "reasons", "metric_without", "label_quality"} <= set(rows[0])
    report = json.loads((folder / "report.json").read_text())
    assert report["audit"]["task"] == "classification"
    assert "## Label audit" in (folder / "report.md").read_text()
    assert "Label audit" in (folder / "report.html").read_text()
    listed = set(json.loads((folder / ".automed-files.json").read_text()))
    assert f"audit/{AUDIT_JSON}" in listed and f"audit/{AUDIT_CSV}" in listed
    again = CliRunner().invoke(main, ["audit", str(folder)])  # the run's own audit is replaced
    assert again.exit_code == 0, again.output


def test_cli_out_leaves_the_run_alone_and_refuses_to_overwrite(fitted_classification_run, tmp_path):
    folder = shutil.copytree(fitted_classification_run, tmp_path / "run")
    before = (folder / "report.json").read_text()
    out = tmp_path / "audit_out"
    assert CliRunner().invoke(main, ["audit", str(folder), "--out", str(out)]).exit_code == 0
    assert (out / AUDIT_CSV).is_file() and not (folder / "audit").exists()
    assert (folder / "report.json").read_text() == before
    refused = CliRunner().invoke(main, ["audit", str(folder), "--out", str(out)])
    assert refused.exit_code != 0 and "--overwrite" in refused.output
    (out / "notes.txt").write_text("mine")
    refused = CliRunner().invoke(main, ["audit", str(folder), "--out", str(out), "--overwrite"])
    assert refused.exit_code != 0 and "notes.txt" in refused.output
    assert (out / "notes.txt").read_text() == "mine"
    inside = CliRunner().invoke(main, ["audit", str(folder), "--out", str(folder / "rungs" / "x")])
    assert inside.exit_code != 0 and "lies inside the run folder" in inside.output


def test_cli_refuses_a_folder_that_is_no_run(tmp_path):
    result = CliRunner().invoke(main, ["audit", str(tmp_path)])
    assert result.exit_code != 0 and "no report.json" in result.output and str(tmp_path) in result.output


def test_audit_record_round_trip_and_damaged_file(tmp_path):
    audit = Audit("classification", "From a rung.", (SuspectCase("a", "train", 0.9, True, ("bad",), {"x": 1.0}, 0.8,
                                                                 "auc"), SuspectCase("b", "test", 0.1, False)),
                  {"x": "a figure"}, {"scope": "auc", "mean": 0.8, "n": 2}, [{"k": 0, "mean": 0.8, "n": 2}])
    write_audit(tmp_path, audit)
    assert read_audit(tmp_path) == audit
    assert read_audit(tmp_path / "none") is None
    (tmp_path / AUDIT_JSON).write_text('{"task": "classification"}')
    with pytest.raises(RunFolderError, match=r"audit\.json: not an audit"):
        read_audit(tmp_path)


def test_robust_z():
    z = robust_z(np.array([1.0, 2.0, 3.0, 4.0, 100.0, np.nan]))
    assert z[4] > 3.5 and abs(z[2]) < 1e-9 and np.isnan(z[5])
    tied = robust_z(np.array([1.0, 1.0, 1.0, 1.0, 5.0]))  # MAD 0: the mean absolute deviation scales it
    assert tied[4] > 3.5 and tied[0] == 0
    assert (robust_z(np.ones(5)) == 0).all()
