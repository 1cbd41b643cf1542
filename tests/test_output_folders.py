"""Output folders never lose what a user owns: a fit's or a prediction's --out that is, holds or lies inside
its inputs is refused, --overwrite replaces only what automed wrote, and a failed, crashed or unfinished
fit leaves the old run and a resumable partial as they were.

Every CLI check asserts the exit status, that the message names the file, and that nothing was written or
deleted (a snapshot of the affected folders before and after)."""

from __future__ import annotations

import shutil

import pytest
from click.testing import CliRunner

import automed
from automed.cli import main
from automed.errors import DataError
from cli_checks import copy_run, fails, snapshot
from conftest import FAST_PARAMS, make_msd, make_npz


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
    assert sorted(p.name for p in pred.iterdir()) == [".automed-predictions.json", "case_000.nii.gz", "case_001.nii.gz",
                                                      "quality.csv", "quality.html"]


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


def test_report_rebuild_never_loses_a_rung(fitted_run, tmp_path):
    run = copy_run(fitted_run, tmp_path / "run")
    shutil.rmtree(run / "rungs")
    fails(["report", str(run)], r"rungs/classical/result.json: missing, although report.json records rung\(s\) "
                                 r"\['classical'\]", run)


@pytest.mark.slow  # an end-to-end fit: `make test-all` runs it
def test_report_of_an_unfinished_fit(fitted_run, tmp_path):
    partial = copy_run(fitted_run, tmp_path / ".run.partial")
    (partial / "state.json").write_text('{"spent_s": 1.0}')
    fails(["report", str(partial)], r"run.partial: an unfinished fit \(it holds state.json\)", partial)


def _fast_recipe() -> automed.Recipe:
    return automed.Recipe(n_folds=2, n_jobs=1, rungs=[{"name": "classical", "params": FAST_PARAMS}])


def test_a_rung_failing_on_bad_data_leaves_no_partial_and_keeps_the_old_run(fitted_run, tmp_path, monkeypatch):
    from automed.rungs.segmentation.classical import ClassicalRung

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
    from automed.rungs.segmentation.classical import ClassicalRung

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
