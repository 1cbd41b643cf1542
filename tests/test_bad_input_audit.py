"""The bad-input audits (issue 13), one test per finding, grouped as the audit grouped them:

1. data loss: a command must never delete or replace what it did not write;
2. silent acceptance: bad data gives an error, or a warning saying what was done;
3. tracebacks: each becomes one sentence naming the file, exit status 1;
4. faults: what a failed or killed fit leaves behind.

The second audit's findings are in ``test_bad_input_second_audit.py``.

Every CLI check asserts the exit status, that the message names the file, and that
nothing was written or deleted (a snapshot of the affected folders before and after).
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

import automed
from automed.cli import main
from automed.errors import DataError, RecipeError
from cli_checks import copy_run, edit_dataset_json, fails, snapshot
from conftest import FAST_PARAMS, make_folders_2d, make_msd, make_npz, write
from test_classification import make_class_folders


# -- 1. data loss ---------------------------------------------------------------------------------


def test_fit_out_is_the_dataset(tmp_path):
    data = make_msd(tmp_path / "data", n_cases=4)
    fails(["fit", str(data), "--out", str(data), "--overwrite", "--quiet"], r"data: --out is the dataset", data)


def test_fit_out_contains_or_lies_inside_the_dataset(tmp_path):
    data = make_msd(tmp_path / "data", n_cases=4)
    fails(["fit", str(data), "--out", str(tmp_path), "--overwrite", "--quiet"], r"--out contains the dataset", data)
    fails(["fit", str(data), "--out", str(data / "runs" / "x"), "--quiet"], r"--out lies inside the dataset", data)


def test_overwrite_replaces_no_folder_that_is_not_a_run(tmp_path):
    data = make_msd(tmp_path / "data", n_cases=4)
    mine = tmp_path / "thesis"
    mine.mkdir()
    (mine / "chapter1.tex").write_text("years of work")
    fails(["fit", str(data), "--out", str(mine), "--overwrite", "--quiet"],
           r"thesis: is not an automed run folder .*--overwrite will not replace it", mine)


def test_overwrite_never_moves_a_file_aside(tmp_path):
    data = make_msd(tmp_path / "data", n_cases=4)
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me")
    fails(["fit", str(data), "--out", str(notes), "--overwrite", "--quiet"], r"notes.txt: is a file, not a run folder",
           notes)


def test_predict_out_is_contains_or_lies_inside_the_inputs(fitted_run, tmp_path):
    images = tmp_path / "new"
    make_msd(tmp_path / "newdata", n_cases=2, seed=5)
    (tmp_path / "newdata" / "imagesTr").rename(images)
    for out, relation in ((images, "is"), (tmp_path, "contains"), (images / "pred", "lies inside")):
        fails(["predict", str(fitted_run), str(images), "--out", str(out), "--overwrite", "--quiet"],
               rf"--out {relation} the input images", images, fitted_run)


def test_predict_out_is_the_run_folder(fitted_run, tmp_path):
    images = make_msd(tmp_path / "newdata", n_cases=2, seed=5) / "imagesTr"
    fails(["predict", str(fitted_run), str(images), "--out", str(fitted_run), "--overwrite", "--quiet"],
           r"--out is the run folder", fitted_run)


def test_predict_overwrite_replaces_only_a_predictions_folder(fitted_run, tmp_path):
    images = make_msd(tmp_path / "newdata", n_cases=2, seed=5) / "imagesTr"
    other = tmp_path / "other"
    other.mkdir()
    (other / "scan.nii.gz").write_bytes(b"someone's data")
    fails(["predict", str(fitted_run), str(images), "--out", str(other), "--overwrite", "--quiet"],
           r"other: is not an automed predictions folder", other)
    pred = tmp_path / "pred"
    for _ in range(2):  # a predictions folder is replaced
        result = CliRunner().invoke(main, ["predict", str(fitted_run), str(images), "--out", str(pred), "--overwrite",
                                           "--quiet"])
        assert result.exit_code == 0, result.output
    assert sorted(p.name for p in pred.iterdir()) == [".automed-predictions.json", "case_000.nii.gz", "case_001.nii.gz"]


def test_report_rebuild_never_loses_a_rung(fitted_run, tmp_path):
    run = copy_run(fitted_run, tmp_path / "run")
    shutil.rmtree(run / "rungs")
    fails(["report", str(run)], r"rungs/classical/result.json: missing, although report.json records rung\(s\) "
                                 r"\['classical'\]", run)


# -- 2. silently accepted -------------------------------------------------------------------------


def test_truncated_nifti_is_named(tmp_path):
    data = make_msd(tmp_path / "data", n_cases=4)
    path = data / "imagesTr" / "case_002.nii.gz"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    fails(["inspect", str(data)], r"case_002.nii.gz: the compressed file is truncated", data)
    fails(["fit", str(data), "--out", str(tmp_path / "run"), "--quiet"], r"case_002.nii.gz: the compressed file is "
           r"truncated", data)
    assert not (tmp_path / "run").exists()


def test_two_files_of_one_case_name(tmp_path):
    data = make_folders_2d(tmp_path / "em", n_cases=3)
    shutil.copy(data / "images" / "1.png", data / "images" / "1.tif")
    fails(["inspect", str(data)], r"images/1.png and 1.tif are both named '1'", data)


def test_masks_with_different_foreground_values(tmp_path):
    data = make_folders_2d(tmp_path / "em", n_cases=4)  # masks stored as {0, 255}
    label = data / "labels" / "2.png"
    from automed.data.io import read_image

    write((read_image(label).array > 0).astype(np.uint8), label)  # this one as {0, 1}
    fails(["inspect", str(data)], r"masks disagree on the foreground value \(value 1 in .*labels/2.png; value 255 in "
                                   r".*labels/0.png and 2 more\)", data)


def test_label_foreground_everywhere_is_a_warning(tmp_path):
    data = make_msd(tmp_path / "data", n_cases=4)
    write(np.ones((12, 14, 12), np.uint8), data / "labelsTr" / "case_003.nii.gz", spacing=(1.0, 1.0, 1.5))
    result = CliRunner().invoke(main, ["inspect", str(data)])
    assert result.exit_code == 0, result.output
    assert "case_003.nii.gz: label is foreground everywhere" in result.output


def test_npz_splits_with_different_image_shapes(tmp_path):
    good = dict(np.load(make_npz(tmp_path / "good.npz")))
    good["val_images"] = good["val_images"][:, :14, :14]
    np.savez(tmp_path / "bad.npz", **good)
    fails(["fit", "--task", "classification", str(tmp_path / "bad.npz"), "--out", str(tmp_path / "run"), "--quiet"],
           r"bad.npz: the splits hold images of different shapes \(train_images \(28, 28\), val_images \(14, 14\)",
           tmp_path / "bad.npz")
    assert not (tmp_path / "run").exists()


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


def test_classification_of_a_segmentation_folder(tmp_path):
    data = make_msd(tmp_path / "data", n_cases=4)
    fails(["fit", "--task", "classification", str(data), "--out", str(tmp_path / "run"), "--quiet"],
           r"data: this is a segmentation dataset \(msd layout\), not class folders; fit it with --task segmentation",
           data)
    em = make_folders_2d(tmp_path / "em", n_cases=3)
    fails(["inspect", "--task", "classification", str(em)], r"em: this is a segmentation dataset \(folders layout\)",
           em)


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


# -- 3. tracebacks --------------------------------------------------------------------------------


def test_every_label_all_background(tmp_path):
    data = make_msd(tmp_path / "data", n_cases=4)  # dataset.json declares three classes
    for label in (data / "labelsTr").iterdir():
        write(np.zeros((12, 14, 12), np.uint8), label, spacing=(1.0, 1.0, 1.5))
    fails(["inspect", str(data)], r"data: every label holds the single value \[0\] \(all background\)", data)
    fails(["fit", str(data), "--out", str(tmp_path / "run"), "--quiet"], r"every label holds the single value", data)


@pytest.mark.parametrize("edit, message", [
    (lambda m: m["training"][1].pop("label"), r"dataset.json: training entry 1 .* has no 'label' path"),
    (lambda m: m.update(training={"case": m["training"][0]}), r"dataset.json: 'training' must be a list .* got a dict"),
    (lambda m: m["training"].append(dict(m["training"][2])), r"dataset.json: case 'case_002' is listed twice in "
                                                             r"'training' \(entries 2 and 4\)"),
], ids=["entry_without_label", "training_as_dict", "case_listed_twice"])
def test_broken_dataset_json(tmp_path, edit, message):
    data = edit_dataset_json(make_msd(tmp_path / "data", n_cases=4), edit)
    fails(["fit", str(data), "--out", str(tmp_path / "run"), "--quiet"], message, data)


@pytest.mark.parametrize("labels, message", [
    (np.array([["benign"], ["malignant"]] * 30), r"train_labels holds <U9 values; it must hold integer class numbers"),
    (np.array([[0], [1]] * 30, dtype=object), r"it holds Python objects, which are not loaded"),
], ids=["string_labels", "object_labels"])
def test_npz_with_non_integer_labels(tmp_path, labels, message):
    arrays = dict(np.load(make_npz(tmp_path / "good.npz")))
    arrays["train_labels"] = labels
    np.savez(tmp_path / "bad.npz", **arrays)
    fails(["fit", "--task", "classification", str(tmp_path / "bad.npz"), "--out", str(tmp_path / "run"), "--quiet"],
           rf"bad.npz: .*{message}", tmp_path / "bad.npz")


def test_npz_with_an_empty_test_split(tmp_path):
    arrays = dict(np.load(make_npz(tmp_path / "good.npz")))
    arrays["test_images"], arrays["test_labels"] = arrays["test_images"][:0], arrays["test_labels"][:0]
    np.savez(tmp_path / "bad.npz", **arrays)
    fails(["fit", "--task", "classification", str(tmp_path / "bad.npz"), "--out", str(tmp_path / "run"), "--quiet"],
           r"bad.npz: test_images is empty", tmp_path / "bad.npz")


def test_empty_class_folder(tmp_path):
    data = make_class_folders(tmp_path / "classes")
    (data / "unsure").mkdir()
    fails(["fit", "--task", "classification", str(data), "--out", str(tmp_path / "run"), "--quiet"],
           r"classes/unsure: class folder holds no images", data)


@pytest.mark.parametrize("damage, message", [
    (lambda f: f.unlink(), r"model.joblib: missing, so the classical rung cannot be used, and no other finished rung"),
    (lambda f: f.write_bytes(f.read_bytes()[:100]), r"model.joblib: checksum does not match the one recorded at fit time"),
], ids=["deleted", "truncated"])
def test_predict_with_a_damaged_model_file(fitted_run, tmp_path, damage, message):
    run = copy_run(fitted_run, tmp_path / "run")
    damage(run / "rungs" / "classical" / "model.joblib")
    images = make_msd(tmp_path / "newdata", n_cases=2, seed=5) / "imagesTr"
    fails(["predict", str(run), str(images), "--out", str(tmp_path / "pred"), "--quiet"], message, run, images)
    assert not (tmp_path / "pred").exists()


def test_predict_out_is_a_file(fitted_run, tmp_path):
    images = make_msd(tmp_path / "newdata", n_cases=2, seed=5) / "imagesTr"
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me")
    fails(["predict", str(fitted_run), str(images), "--out", str(notes), "--overwrite", "--quiet"],
           r"notes.txt: is a file, not a predictions folder", notes)


def test_classification_predict_out_is_a_folder(fitted_classification_run, tmp_path):
    data = make_npz(tmp_path / "new.npz", seed=3)
    folder = tmp_path / "preds"
    folder.mkdir()
    fails(["predict", str(fitted_classification_run), str(data), "--out", str(folder), "--overwrite", "--quiet"],
           r"preds: is a folder; a classification run writes one CSV file", folder)


def test_classification_predict_on_an_npz_that_is_not_a_zip(fitted_classification_run, tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file" * 20)
    fails(["predict", str(fitted_classification_run), str(bad), "--out", str(tmp_path / "p.csv"), "--quiet"],
           r"bad.npz: cannot be read as a .npz file of arrays", bad)
    assert not (tmp_path / "p.csv").exists()


def test_predict_with_a_skipped_rung(fitted_run, tmp_path):
    run = copy_run(fitted_run, tmp_path / "run")
    report = json.loads((run / "report.json").read_text())
    report["rungs"].append({"name": "unet2d", "status": "skipped", "reason": "the time budget was used up"})
    (run / "report.json").write_text(json.dumps(report))
    images = make_msd(tmp_path / "newdata", n_cases=2, seed=5) / "imagesTr"
    fails(["predict", str(run), str(images), "--out", str(tmp_path / "pred"), "--rung", "unet2d", "--quiet"],
           r"rung 'unet2d' was skipped in this run \(the time budget was used up\); fitted rungs: \['classical'\]", run)
    fails(["predict", str(run), str(images), "--out", str(tmp_path / "pred"), "--rung", "unet9d", "--quiet"],
           r"this run has no rung 'unet9d'", run)


def test_too_few_cases_for_the_splits_names_the_dataset(tmp_path):
    data = make_msd(tmp_path / "data", n_cases=4)
    fails(["fit", str(data), "--out", str(tmp_path / "run"), "--folds", "6", "--quiet"],
           r"data: 6-fold cross-validation needs at least 6 cases", data)


def test_numbers_in_messages_read_as_written():
    with pytest.raises(RecipeError, match=r"Got 1.5 instead"):
        automed.Recipe(min_gain=np.float64(1.5))


# -- 4. faults ------------------------------------------------------------------------------------


def _fast_recipe() -> automed.Recipe:
    return automed.Recipe(n_folds=2, n_jobs=1, rungs=[{"name": "classical", "params": FAST_PARAMS}])


def test_a_rung_failing_on_bad_data_leaves_no_partial_and_keeps_the_old_run(fitted_run, tmp_path, monkeypatch):
    from automed.rungs.classical import ClassicalRung

    out = copy_run(fitted_run, tmp_path / "run")
    before = snapshot(out)
    data = make_msd(tmp_path / "data", n_cases=4)

    def broken(self, context, plan=None):
        raise DataError(f"{data / 'imagesTr' / 'case_001.nii.gz'}: found wanting.")

    monkeypatch.setattr(ClassicalRung, "fit", broken)
    with pytest.raises(DataError, match="found wanting"):
        automed.fit(_fast_recipe(), data, out, overwrite=True, progress=False)
    assert snapshot(out) == before
    assert not (tmp_path / ".run.partial").exists()


def test_an_unexpected_crash_keeps_the_partial_for_resume(tmp_path, monkeypatch, caplog):
    from automed.rungs.classical import ClassicalRung

    data = make_msd(tmp_path / "data", n_cases=4)
    real_fit = ClassicalRung.fit
    monkeypatch.setattr(ClassicalRung, "fit", lambda self, context, plan=None: (_ for _ in ()).throw(MemoryError()))
    with pytest.raises(MemoryError):
        automed.fit(_fast_recipe(), data, tmp_path / "run", progress=False)
    assert (tmp_path / ".run.partial" / "state.json").is_file()
    assert "Continue it with: automed fit --resume" in caplog.text
    monkeypatch.setattr(ClassicalRung, "fit", real_fit)
    result = CliRunner().invoke(main, ["fit", "--resume", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert not (tmp_path / ".run.partial").exists()


def test_finished_run_holds_no_state_file(fitted_run):
    assert not (fitted_run / "state.json").exists()
