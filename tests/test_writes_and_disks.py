"""Checked writes: a full disk or a read-only folder is one sentence naming the folder, exit 1, and
nothing half-written; ``--overwrite`` replaces only what automed wrote; masks are written in a
format that can be written (PNG for GIF)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from automed.cli import main
from automed.cli._errors import write_error_message
from automed.data import atomic
from automed.data.atomic import WriteError, folder_written_atomically, output_location, write_bytes
from automed.data.io import Geometry, mask_suffix, write_image
from automed.errors import RunFolderError
from conftest import FAST_PARAMS, blob_case, make_msd

GEOMETRY_3D = Geometry((1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))


def files_of(folder: Path) -> dict[str, int]:
    """Every file under ``folder`` (hidden ones included) and its size."""
    return {p.relative_to(folder).as_posix(): p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_nothing_half_written(parent: Path, out: Path) -> None:
    """``out`` was not created and nothing hidden (a partial file or folder) or empty is left in ``parent``."""
    assert not out.exists()
    left = [p.name for p in parent.iterdir() if ".partial" in p.name]
    assert not left, left
    assert not [f for f, size in files_of(parent).items() if size == 0]


@pytest.fixture
def disk_full_on_fsync(monkeypatch: pytest.MonkeyPatch):
    """Every fsync of a file whose path holds ``fail_on["part"]`` fails with ENOSPC, as a full disk does on a
    file system that allocates late (NFS, ext4 delayed allocation)."""
    fail_on = {"part": ""}
    real = os.fsync

    def fsync(fd: int) -> None:
        if fail_on["part"] in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    return fail_on


# ------------------------------------------------------------------------------------------------------------------
# the checked writes themselves


def test_a_failed_write_leaves_the_old_file_and_no_partial_one(tmp_path, disk_full_on_fsync):
    target = tmp_path / "report.json"
    target.write_text("old")
    with pytest.raises(WriteError, match="No space left on device") as caught:
        write_bytes(target, b"new")
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(target)
    assert files_of(tmp_path) == {"report.json": 3}


def test_an_image_writer_that_stops_silently_on_a_full_disk_is_caught(tmp_path, monkeypatch):
    """SimpleITK's NIfTI writer returns without an error when the disk fills: the file is checked after."""
    import SimpleITK as sitk

    def truncated(image, path, useCompression=False):
        Path(path).write_bytes(b"\x5c\x01")  # what a writer that ran out of room leaves

    monkeypatch.setattr(sitk, "WriteImage", truncated)
    monkeypatch.setattr(atomic, "_folder_problem", lambda folder: errno.ENOSPC)  # the disk it left full
    with pytest.raises(WriteError, match="No space left on device"):
        write_image(np.zeros((3, 4, 5), np.uint8), GEOMETRY_3D, tmp_path / "mask.nii.gz")
    assert files_of(tmp_path) == {}


def test_an_image_writer_error_is_a_write_error_naming_the_file(tmp_path, monkeypatch):
    import SimpleITK as sitk

    def fails(image, path, useCompression=False):
        raise RuntimeError("Exception thrown in SimpleITK ImageFileWriter_Execute: x.cxx:567:\n"
                           "ITK ERROR: PNGImageIO(0x1): Error while writing Slice to file: x\n"
                           "Reason: No space left on device")

    monkeypatch.setattr(sitk, "WriteImage", fails)
    with pytest.raises(WriteError, match="Reason: No space left on device") as caught:
        write_image(np.zeros((4, 5), np.uint8), GEOMETRY_3D, tmp_path / "mask.png")
    assert caught.value.filename == str(tmp_path / "mask.png")
    assert files_of(tmp_path) == {}


def test_a_failed_folder_keeps_the_old_one_and_names_the_file_in_it(tmp_path, disk_full_on_fsync):
    out = tmp_path / "pred"
    out.mkdir()
    (out / "a.nii.gz").write_bytes(b"old")
    disk_full_on_fsync["part"] = "/.b.nii.gz.partial-"  # b's temporary file (a's ends in hex, which may end in b)
    with pytest.raises(WriteError) as caught:
        with folder_written_atomically(out) as staging:
            write_bytes(staging / "a.nii.gz", b"new")
            write_bytes(staging / "b.nii.gz", b"new")
    assert caught.value.filename == str(out / "b.nii.gz")
    assert files_of(tmp_path) == {"pred/a.nii.gz": 3}


def test_an_empty_file_in_a_folder_fails_it(tmp_path):
    with pytest.raises(WriteError, match="written empty"):
        with folder_written_atomically(tmp_path / "out") as staging:
            (staging / "mask.png").touch()
    assert files_of(tmp_path) == {} and not list(tmp_path.iterdir())


def test_an_input_that_cannot_be_read_is_not_called_a_failed_write(tmp_path):
    with pytest.raises(PermissionError) as caught:
        with folder_written_atomically(tmp_path / "out"):
            raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "input.nii.gz"))
    assert not isinstance(caught.value, WriteError) and not list(tmp_path.iterdir())


@pytest.mark.parametrize("written, expected", [
    ("runs/.hippo.partial/rungs/classical/oof/c.nii.gz", ("runs/hippo", "rungs/classical/oof/c.nii.gz")),
    ("pred/.out.partial-0123abcd/c.png", ("pred/out", "c.png")),
    ("pred/c.png", ("pred", "c.png")),
])
def test_a_file_in_a_hidden_staging_folder_is_named_in_its_output(written, expected):
    folder, file = output_location(written)
    assert (folder.as_posix(), file) == expected


@pytest.mark.parametrize("exc, message", [
    (WriteError(errno.ENOSPC, "No space left on device", "pred/c1.nii.gz"),
     "pred: the disk is full (No space left on device) while writing c1.nii.gz; nothing was written "
     "there; free space or choose another --out."),
    (WriteError(errno.ENOSPC, "No space left on device", "runs/.hippo.partial/fingerprint.json"),
     "runs/hippo: the disk is full (No space left on device) while writing fingerprint.json; nothing was written "
     "there; free space or choose another --out."),
    (WriteError(errno.EROFS, "Read-only file system", "/mnt/ro/pred"),
     "/mnt/ro: cannot be written (Read-only file system) while writing pred; nothing was written there; make it "
     "writable or choose another --out."),
    (OSError(errno.EDQUOT, "Disk quota exceeded"),
     "out: the disk is full (Disk quota exceeded); nothing was written there; free space or choose another --out."),
])
def test_a_failed_write_is_one_sentence_naming_the_folder(exc, message):
    assert write_error_message(exc, "out") == message


def test_other_os_errors_are_not_taken_for_failed_writes():
    assert write_error_message(PermissionError(errno.EACCES, "Permission denied", "input.nii.gz")) is None
    assert write_error_message(FileNotFoundError(errno.ENOENT, "No such file", "x")) is None


# ------------------------------------------------------------------------------------------------------------------
# commands onto a full disk (injected: every CI can run these)


def test_predict_onto_a_full_disk_exits_1_naming_the_folder(fitted_run, tmp_path, disk_full_on_fsync):
    disk_full_on_fsync["part"] = "case_00"
    out = tmp_path / "pred"
    result = CliRunner().invoke(main, ["predict", str(fitted_run), str(fitted_run.parent / "data" / "imagesTr"),
                                       "--out", str(out), "--quiet"])
    assert result.exit_code == 1, result.output
    assert f"Error: {out}: the disk is full (No space left on device) while writing case_00" in result.output
    assert "nothing was written there" in result.output and "Traceback" not in result.output
    assert_nothing_half_written(tmp_path, out)


def test_classification_predict_onto_a_full_disk_leaves_no_csv(fitted_classification_run, tmp_path,
                                                               disk_full_on_fsync):
    from conftest import make_npz

    data = make_npz(tmp_path / "new.npz", sizes=(2, 2, 4))
    out = tmp_path / "out" / "predictions.csv"
    out.parent.mkdir()
    result = CliRunner().invoke(main, ["predict", str(fitted_classification_run), str(data), "--out", str(out),
                                       "--quiet", "--split", "test"])
    assert result.exit_code == 1, result.output
    assert (f"Error: {out.parent}: the disk is full (No space left on device) while writing predictions.csv; "
            "nothing was written there; free space or choose another --out.") in result.output
    assert_nothing_half_written(out.parent, out)


@pytest.mark.parametrize("during", ["fingerprint.json", "oof"])
def test_fit_onto_a_full_disk_exits_1_and_leaves_no_run_folder(tmp_path, disk_full_on_fsync, during):
    data = make_msd(tmp_path / "data", n_cases=4, shape=(8, 9, 8))
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(json.dumps({"task": "segmentation", "n_folds": 2, "n_jobs": 1,
                                  "rungs": [{"name": "classical", "params": FAST_PARAMS}]}))
    disk_full_on_fsync["part"] = during
    out = tmp_path / "runs" / "run"
    result = CliRunner().invoke(main, ["fit", str(data), "--recipe", str(recipe), "--out", str(out), "--quiet"])
    assert result.exit_code == 1, result.output
    assert f"Error: {out}: the disk is full (No space left on device) while writing " in result.output
    assert not out.exists()
    staging = out.parent / ".run.partial"
    if during == "fingerprint.json":  # in the set-up: nothing to resume, nothing left
        assert not staging.exists()
    else:  # while fitting: the progress is kept for `fit --resume` once space is freed
        assert (staging / "state.json").is_file()
    assert not [f for f, size in files_of(out.parent).items() if size == 0 or ".partial-" in f]


def test_export_onto_a_full_disk_exits_1_and_leaves_nothing(fitted_run, tmp_path, disk_full_on_fsync):
    disk_full_on_fsync["part"] = "model.joblib"
    out = tmp_path / "model"
    result = CliRunner().invoke(main, ["export", str(fitted_run), "--rung", "classical", "--format", "joblib",
                                       "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert (f"Error: {out}: the disk is full (No space left on device) while writing model.joblib; nothing was "
            "written there; free space or choose another --out.") in result.output
    assert_nothing_half_written(tmp_path, out)


def test_report_onto_a_full_disk_exits_1_and_keeps_the_old_report(fitted_run, tmp_path, disk_full_on_fsync):
    run = tmp_path / "run"
    shutil.copytree(fitted_run, run)
    before = (run / "report.html").read_bytes()
    disk_full_on_fsync["part"] = "report.html"
    result = CliRunner().invoke(main, ["report", str(run)])
    assert result.exit_code == 1, result.output
    assert (f"Error: {run}: the disk is full (No space left on device) while writing report.html; no file was "
            "left half-written; free space and run the command again.") in result.output
    assert (run / "report.html").read_bytes() == before
    assert not [f for f, size in files_of(run).items() if size == 0 or ".partial" in f]


# ------------------------------------------------------------------------------------------------------------------
# read-only and unwritable output folders: refused before any work


def test_an_unwritable_output_folder_is_refused_before_predicting(fitted_run, tmp_path, monkeypatch):
    """Injected (root may write anywhere): the folder is not writable for this user."""
    parent = tmp_path / "locked"
    parent.mkdir()
    monkeypatch.setattr(atomic.os, "access", lambda path, mode: Path(path) != parent)
    result = CliRunner().invoke(main, ["predict", str(fitted_run), str(fitted_run.parent / "data" / "imagesTr"),
                                       "--out", str(parent / "pred"), "--quiet"])
    assert result.exit_code == 1, result.output
    assert (f"Error: {parent}: cannot be written (Permission denied) while writing pred; nothing was written there; "
            "make it writable or choose another --out.") in result.output
    assert not list(parent.iterdir())


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_a_read_only_folder_is_refused_for_export(fitted_run, tmp_path):
    parent = tmp_path / "locked"
    parent.mkdir()
    parent.chmod(0o500)
    try:
        result = CliRunner().invoke(main, ["export", str(fitted_run), "--rung", "classical", "--format", "joblib",
                                           "--out", str(parent / "model")])
        assert result.exit_code == 1 and f"Error: {parent}: cannot be written (Permission denied)" in result.output
        assert not list(parent.iterdir())
    finally:
        parent.chmod(0o700)


# ------------------------------------------------------------------------------------------------------------------
# a real, small file system (where this process may mount one)


def _mount(folder: Path, options: str) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    return shutil.which("mount") is not None and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True).returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    """A 256 KiB tmpfs filled up to ``free_bytes`` (see ``fill``); skipped where mounting is not allowed."""
    folder = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    if not _mount(folder, "size=256k"):
        pytest.skip("cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN); the injected tests cover it")

    def fill(free_bytes: int) -> None:
        filler = folder / "filler"
        handle = os.open(filler, os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(handle, b"\1" * 4096):
                pass
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        finally:
            os.close(handle)
        os.truncate(filler, max(0, filler.stat().st_size - free_bytes))

    yield folder, fill
    subprocess.run(["umount", str(folder)], check=False)


def test_predict_onto_a_really_full_disk_exits_1_with_no_empty_mask(fitted_run, small_disk):
    disk, fill = small_disk
    fill(8192)  # room for the first file or two, not for ten masks
    out = disk / "pred"
    result = CliRunner().invoke(main, ["predict", str(fitted_run), str(fitted_run.parent / "data" / "imagesTr"),
                                       "--out", str(out), "--quiet"])
    assert result.exit_code == 1, result.output
    assert f"Error: {out}: the disk is full (No space left on device) while writing " in result.output
    assert_nothing_half_written(disk, out)


def test_export_onto_a_really_full_disk_exits_1(fitted_run, small_disk):
    disk, fill = small_disk
    fill(4096)
    out = disk / "model"
    result = CliRunner().invoke(main, ["export", str(fitted_run), "--rung", "classical", "--format", "joblib",
                                       "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert f"Error: {out}: the disk is full (No space left on device) while writing " in result.output
    assert_nothing_half_written(disk, out)


def test_a_read_only_file_system_is_refused_before_predicting(fitted_run, tmp_path):
    disk = tmp_path / "ro"
    if not _mount(disk, "ro,size=64k"):
        pytest.skip("cannot mount a tmpfs here; the injected test covers an unwritable folder")
    try:
        result = CliRunner().invoke(main, ["predict", str(fitted_run), str(fitted_run.parent / "data" / "imagesTr"),
                                           "--out", str(disk / "pred"), "--quiet"])
        assert result.exit_code == 1, result.output
        assert f"Error: {disk}: cannot be written (Read-only file system) while writing pred" in result.output
    finally:
        subprocess.run(["umount", str(disk)], check=False)


# ------------------------------------------------------------------------------------------------------------------
# --overwrite replaces only what automed wrote


@pytest.fixture(scope="module")
def exported(fitted_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("exported") / "model"
    result = CliRunner().invoke(main, ["export", str(fitted_run), "--rung", "classical", "--format", "joblib",
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_an_export_lists_every_file_it_wrote(exported):
    record = json.loads((exported / "automed_model.json").read_text())
    assert record["written"] == sorted(set(files_of(exported)) - {"automed_model.json"})
    assert "model.joblib" in record["written"]


def test_export_overwrite_replaces_an_export_that_holds_only_its_files(fitted_run, exported, tmp_path):
    out = tmp_path / "model"
    shutil.copytree(exported, out)
    (out / "model.joblib").write_bytes(b"stale")
    result = CliRunner().invoke(main, ["export", str(fitted_run), "--rung", "classical", "--format", "joblib",
                                       "--out", str(out), "--overwrite"])
    assert result.exit_code == 0, result.output
    assert (out / "model.joblib").read_bytes() == (fitted_run / "rungs" / "classical" / "model.joblib").read_bytes()


@pytest.mark.parametrize("user_files, named", [
    ({"app.py": "print('app')", "src/serve.py": "x = 1"}, "app.py"),  # an app folder built around an export
    ({"notes/readme.txt": "mine"}, "notes"),
])
def test_export_overwrite_refuses_a_folder_holding_user_files(fitted_run, exported, tmp_path, user_files, named):
    out = tmp_path / "app"
    shutil.copytree(exported, out)
    for name, text in user_files.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text)
    before = files_of(out)
    result = CliRunner().invoke(main, ["export", str(fitted_run), "--rung", "classical", "--format", "joblib",
                                       "--out", str(out), "--overwrite"])
    assert result.exit_code == 1, result.output
    assert (f"Error: {out}: holds {named}, which automed did not write there, so --overwrite will not replace the "
            "folder") in result.output
    assert files_of(out) == before


def test_export_overwrite_refuses_a_record_that_lists_no_files(fitted_run, tmp_path):
    out = tmp_path / "app"
    out.mkdir()
    (out / "automed_model.json").write_text(json.dumps({"rung": "classical", "files": ["model.joblib"]}))
    (out / "app.py").write_text("print('app')")
    with pytest.raises(RunFolderError, match="automed_model.json: does not list the files automed wrote"):
        from automed.export import export_run
        export_run(fitted_run, out, rung="classical", format="joblib", overwrite=True)
    assert sorted(files_of(out)) == ["app.py", "automed_model.json"]


def test_predict_overwrite_refuses_a_predictions_folder_holding_user_files(fitted_run, tmp_path):
    from automed.ladder.predict import predict_run

    images = fitted_run.parent / "data" / "imagesTr"
    out = tmp_path / "pred"
    written = predict_run(fitted_run, images / "case_000.nii.gz", out, progress=False)
    assert [p.name for p in written] == ["case_000.nii.gz"]
    (out / "my_notes.txt").write_text("mine")
    with pytest.raises(RunFolderError, match="holds my_notes.txt, which automed did not write there"):
        predict_run(fitted_run, images / "case_000.nii.gz", out, overwrite=True, progress=False)
    assert sorted(files_of(out)) == [".automed-predictions.json", "case_000.nii.gz", "my_notes.txt", "quality.csv",
                                     "quality.html"]


# ------------------------------------------------------------------------------------------------------------------
# masks in a format that can be written


@pytest.mark.parametrize("source, suffix", [
    ("a.gif", ".png"), ("a.JPG", ".png"), ("a.jpeg", ".png"), ("a.png", ".png"), ("a.tif", ".tif"),
    ("a.mhd", ".mha"), ("a.nhdr", ".nrrd"), ("a.nii.gz", ".nii.gz"), ("a.dcm", ".nii.gz"),
])
def test_a_mask_is_written_in_a_format_that_keeps_it(tmp_path, source, suffix):
    path = tmp_path / source
    path.write_bytes(b"x")
    assert mask_suffix(path) == suffix


def test_a_dicom_series_folder_gets_nifti_masks(tmp_path):
    assert mask_suffix(tmp_path) == ".nii.gz"


@pytest.mark.slow  # an end-to-end fit: `make test-all` runs it
def test_a_dataset_with_gif_masks_fits_and_predicts_png_masks(tmp_path):
    """Vessel datasets ship GIF masks, which ITK cannot write: the out-of-fold and predicted masks are PNG."""
    import automed
    from PIL import Image as PILImage

    rng = np.random.default_rng(3)
    root = tmp_path / "vessels"
    for folder in ("images", "labels"):
        (root / folder).mkdir(parents=True)
    for i in range(6):
        image, label = blob_case((24, 24), rng, n_classes=2)
        PILImage.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(root / "images" / f"{i}.png")
        PILImage.fromarray((label * 255).astype(np.uint8)).save(root / "labels" / f"{i}.gif")
    recipe = automed.Recipe(task="segmentation", n_folds=2, n_jobs=1,
                            rungs=[{"name": "classical", "params": FAST_PARAMS}])
    run = automed.fit(recipe, root, tmp_path / "run", progress=False)
    oof = sorted(p.name for p in (tmp_path / "run" / "rungs" / "classical" / "oof").iterdir())
    assert oof and all(name.endswith(".png") for name in oof)
    new = tmp_path / "new"
    new.mkdir()
    PILImage.open(root / "images" / "0.png").save(new / "0.gif")  # an image to predict stored as GIF too
    written = run.predict(new, out=tmp_path / "pred")
    assert [p.name for p in written] == ["0.png"]
    from automed.data.io import read_image

    assert set(np.unique(read_image(written[0]).array)) <= {0, 255}
