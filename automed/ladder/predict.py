"""Predict masks for new images with a fitted rung of a run folder."""

from __future__ import annotations

import json
import logging
import shutil
import uuid
from pathlib import Path

from automed.errors import DataError, RunFolderError

__all__ = ["predict_run", "predict_classification"]

log = logging.getLogger("automed")


def predict_run(run_folder: str | Path, inputs: str | Path, out: str | Path, rung: str | None = None,
                overwrite: bool = False, progress: bool = True) -> list[Path]:
    """Write one mask per input image into ``out``, in the input's format and geometry.

    Parameters
    ----------
    run_folder : path
        A finished run.
    inputs : path
        An image file, a DICOM series folder, or a folder of images (``imagesTs/`` is
        used when the folder is a dataset).
    out : path
        Output folder; must not exist unless ``overwrite``. Written atomically.
    rung : str, optional
        Rung to use; defaults to the report's best rung.

    Returns
    -------
    list of Path
        The masks written.
    """
    from tqdm.auto import tqdm

    from automed.data.dataset import find_images
    from automed.data.fingerprint import Fingerprint
    from automed.data.io import image_suffix, write_image
    from automed.data.loading import load_image_channels
    from automed.data.normalize import normalize, unmap_labels
    from automed.rungs import rung_class

    run_folder, out = Path(run_folder), Path(out)
    report, name = _open_run(run_folder, rung)
    if report["task"] == "classification":
        return [predict_classification(run_folder, inputs, out, rung=name, overwrite=overwrite, progress=progress)]
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise RunFolderError(f"{out}: output folder already exists; pass --overwrite or choose another --out.")
    fingerprint = Fingerprint.from_dict(json.loads((run_folder / "fingerprint.json").read_text()))
    model = rung_class(name, report["task"]).load(run_folder / "rungs" / name)
    cases = find_images(inputs, fingerprint.channel_names)
    in_one_file = report["dataset"]["format"] == "msd" and fingerprint.n_channels > 1

    staging = out.parent / f".{out.name}.partial-{uuid.uuid4().hex[:8]}"
    staging.mkdir(parents=True)
    written = []
    try:
        for case in tqdm(cases, desc=f"predict ({name})", unit="case", disable=not progress):
            image, geometry = load_image_channels(case, fingerprint.n_channels, in_one_file)
            if image.ndim - 1 != fingerprint.dims:
                raise DataError(f"{case.image_paths[0]}: image is {image.ndim - 1}D but the run was fitted on "
                                f"{fingerprint.dims}D images.")
            pred = model.predict(normalize(image, fingerprint))
            source = case.image_paths[0]
            suffix = image_suffix(source) if source.is_file() and image_suffix(source) != ".dcm" else ".nii.gz"
            name_out = f"{case.case_id}{suffix}"
            write_image(unmap_labels(pred, fingerprint.label_mapping), geometry, staging / name_out)
            written.append(out / name_out)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info("predicted %d case(s) with rung %s into %s", len(written), name, out)
    return written


def _open_run(run_folder: Path, rung: str | None) -> tuple[dict, str]:
    report_path = run_folder / "report.json"
    if not report_path.is_file():
        raise RunFolderError(f"{run_folder}: no report.json; is this a finished automed run folder?")
    report = json.loads(report_path.read_text())
    name = rung or report["best_rung"]
    if name is None or not (run_folder / "rungs" / name / "result.json").is_file():
        raise RunFolderError(f"{run_folder}: rung {name!r} was not fitted in this run.")
    return report, name


def predict_classification(run_folder: str | Path, inputs: str | Path, out: str | Path, rung: str | None = None,
                           split: str | None = None, overwrite: bool = False, progress: bool = True) -> Path:
    """Write a CSV with ``case``, ``label`` and one ``prob_<class>`` column per class.

    ``inputs`` is a MedMNIST ``.npz`` (``split`` picks one of train/val/test, default
    all; cases are named ``<split>_<index>``), a CSV manifest, a folder of images
    (searched recursively) or one image file.
    """
    import csv

    from automed.data.classification import ClassificationDataset, ImageCase, open_classification
    from automed.data.io import image_suffix, strip_suffix
    from automed.rungs import rung_class

    run_folder, out, inputs = Path(run_folder), Path(out), Path(inputs)
    report, name = _open_run(run_folder, rung)
    if out.exists() and not overwrite:
        raise RunFolderError(f"{out}: already exists; pass --overwrite or choose another --out.")
    if not inputs.exists():
        raise DataError(f"{inputs}: not found.")
    if inputs.suffix.lower() in (".npz", ".csv"):
        dataset = open_classification(inputs) if inputs.suffix.lower() == ".csv" else _unlabelled_npz(inputs)
    else:
        files = [inputs] if inputs.is_file() else sorted(p for p in inputs.rglob("*")
                                                         if p.is_file() and image_suffix(p) and not p.name.startswith("."))
        if not files:
            raise DataError(f"{inputs}: holds no images to classify.")
        cases = tuple(ImageCase(str(f.relative_to(inputs)) if inputs.is_dir() else strip_suffix(f), None,
                                image_path=f) for f in files)
        dataset = ClassificationDataset(inputs, "files", cases, ())
    cases = [c for c in dataset.cases if split is None or c.split == split]
    if not cases:
        raise DataError(f"{inputs}: no cases in split {split!r}.")
    model = rung_class(name, "classification").load(run_folder / "rungs" / name)
    proba = model.predict_proba(dataset, cases, progress=progress)
    from automed.metrics import decide_classes

    labels = decide_classes(proba, model.threshold_)
    tmp = out.with_name(f".{out.name}.partial")
    with tmp.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["case", "label"] + [f"prob_{c}" for c in model.classes_])
        for case, k, row in zip(cases, labels, proba):
            writer.writerow([case.case_id, model.classes_[k]] + [f"{p:.6f}" for p in row])
    tmp.replace(out)
    log.info("classified %d case(s) with rung %s into %s", len(cases), name, out)
    return out


def _unlabelled_npz(path: Path):
    """A MedMNIST-style ``.npz`` for prediction: labels are optional."""
    import numpy as np

    from automed.data.classification import MEDMNIST_SPLITS, ClassificationDataset, ImageCase

    data = np.load(path)
    arrays = {s: data[f"{s}_images"] for s in MEDMNIST_SPLITS if f"{s}_images" in data.files}
    if not arrays:
        raise DataError(f"{path}: no '<split>_images' keys (train_images, val_images, test_images).")
    cases = tuple(ImageCase(f"{s}_{i}", None, index=i, split=s) for s, a in arrays.items() for i in range(len(a)))
    return ClassificationDataset(path, "medmnist", cases, (), arrays)
