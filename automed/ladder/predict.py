"""Predict masks for new images with a fitted rung of a run folder."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from automed._dotted import load_attribute
from automed.data.atomic import folder_written_atomically
from automed.errors import AutomedError, DataError, RunFolderError
from automed.ladder.outputs import check_output_folder, refuse_overlap, write_output_record
from automed.quality.record import (QUALITY_CSV, QUALITY_HTML, UNCERTAINTY, flag_counts, quality_columns, read_quality,
                                   write_quality_table)

__all__ = ["predict_classification", "predict_run", "predict_segmentation"]

log = logging.getLogger("automed")


def predict_run(run_folder: str | Path, inputs: str | Path | Sequence[str | Path], out: str | Path, rung: str | None = None,
                overwrite: bool = False, progress: bool = True, split: str | None = None,
                tta: bool = True, uncertainty_maps: bool = False) -> list[Path]:
    """Predict ``inputs`` with a fitted rung through the run's task (its ``predictor``): for segmentation one mask
    per input image into the folder ``out``, in the input's format (where a mask can be written in it: see
    :func:`automed.data.io.mask_suffix`) and geometry; for classification the CSV of :func:`predict_classification`.

    Parameters
    ----------
    run_folder : path
        A finished run.
    inputs : path or list of paths
        An image file, a DICOM series folder, a folder of images (``imagesTs/`` is
        used when the folder is a dataset), or a list of image files.
    out : path
        Output folder, written atomically. It must be absent or empty, or with ``overwrite`` a
        folder of earlier predictions holding nothing but what its ``.automed-predictions.json``
        lists; it may not be, contain or lie inside ``inputs`` or the run folder.
    rung : str, optional
        Rung to use; defaults to the report's best rung.
    split : str, optional
        Classification ``.npz`` inputs only: predict this split.
    tta : bool
        ``False`` predicts without the mirrored test-time augmentation a deep rung was fitted
        with: 8 times faster in 3D (4 in 2D), at a small cost in Dice (the report's scores are
        with it).
    uncertainty_maps : bool
        Segmentation: also write each case's per-voxel uncertainty (normalised entropy x 255, uint8) into
        ``out/uncertainty/``, in the mask's format and geometry.

    Returns
    -------
    list of Path
        The masks written (beside them, ``quality.csv`` and ``quality.html`` where the run kept a quality record).
    """

    from automed.tasks import get_task

    report, name = _open_run(Path(run_folder), rung)
    asked = {"uncertainty_maps": True} if uncertainty_maps else {}  # a task's predictor need not know the option
    written = load_attribute(get_task(report["task"]).predictor)(
        run_folder, inputs, out, rung=name, split=split, overwrite=overwrite, progress=progress, tta=tta, **asked)
    return written if isinstance(written, list) else [written]


def predict_segmentation(run_folder: str | Path, inputs: str | Path | Sequence[str | Path], out: str | Path,
                         rung: str | None = None, split: str | None = None, overwrite: bool = False,
                         progress: bool = True, tta: bool = True, uncertainty_maps: bool = False) -> list[Path]:
    """Write one mask per input image into the folder ``out``, with ``quality.csv`` and ``quality.html`` where the
    run kept a quality record (see :func:`predict_run`)."""
    from tqdm.auto import tqdm

    from automed.data.inputs import find_images
    from automed.data.fingerprint import Fingerprint
    from automed.data.io import mask_suffix, write_image
    from automed.data.loading import load_image_channels
    from automed.data.normalize import unmap_labels
    from automed.data.atomic import write_text
    from automed.data.io import COLOUR_CHANNELS
    from automed.data.resample import resample_image, resample_labels
    from automed.quality.descriptors import image_descriptors
    from automed.quality.segmentation import entropy_map, segmentation_values
    from automed.report.quality_page import MAX_PAGE_CASES, flagged_picture, quality_page

    run_folder, out = Path(run_folder), Path(out)
    report, name = _open_run(run_folder, rung)
    if split is not None:
        raise DataError(f"{inputs}: --split applies to classification .npz inputs; {run_folder} is a segmentation run.")
    refuse_overlap(out, {**_inputs_named(inputs), "the run folder": run_folder})
    check_output_folder(out, overwrite, "predictions")
    fingerprint = Fingerprint.from_dict(json.loads((run_folder / "fingerprint.json").read_text()))
    model = _load_rung(run_folder, name, "segmentation", tta)
    # runs fitted before the fingerprint recorded it: only MSD stored channels in one file
    in_one_file = fingerprint.channels_in_one_file or (report["dataset"]["format"] == "msd"
                                                       and fingerprint.n_channels > 1)
    cases = find_images(inputs, fingerprint.channel_names, in_one_file)

    quality, no_quality = read_quality(run_folder)
    if quality is None:
        log.warning("%s", no_quality)
    colour = tuple(fingerprint.channel_names) == COLOUR_CHANNELS
    written, assessed, pictures = [], [], {}
    with folder_written_atomically(out) as staging:
        for case in tqdm(cases, desc=f"predict ({name})", unit="case", disable=not progress):
            image, geometry = load_image_channels(case, fingerprint.n_channels, in_one_file)
            if image.ndim - 1 != fingerprint.dims:
                raise DataError(f"{case.image_paths[0]}: image is {image.ndim - 1}D but the run was fitted on "
                                f"{fingerprint.dims}D images.")
            working, back = _working_image(image, geometry, fingerprint, case.image_paths[0])
            proba = model.predict_proba(working)
            pred = model.class_map(proba)
            suffix = mask_suffix(case.image_paths[0])
            unsure = entropy_map(proba) if quality is not None or uncertainty_maps else None
            if quality is not None:
                values = segmentation_values(proba, unsure, pred, quality.label_shapes)
                assessed.append(quality.assess(name, case.case_id, image_descriptors(working, geometry.spacing[::-1]),
                                               values))
                if assessed[-1].flag != "ok" and len(pictures) < MAX_PAGE_CASES:
                    pictures[case.case_id] = flagged_picture(working, pred, unsure, colour)
            if uncertainty_maps:
                on_input = unsure[None] if back is None else resample_image(unsure[None], back)
                (staging / UNCERTAINTY).mkdir(exist_ok=True)
                write_image(np.clip(np.rint(255 * on_input[0]), 0, 255).astype(np.uint8), geometry,
                            staging / UNCERTAINTY / f"{case.case_id}{suffix}")
            pred = pred if back is None else resample_labels(pred, back)
            write_image(unmap_labels(pred, fingerprint.label_mapping), geometry, staging / f"{case.case_id}{suffix}")
            written.append(out / f"{case.case_id}{suffix}")
        if quality is not None:
            order = write_quality_table(staging / QUALITY_CSV, assessed)
            flagged = [(assessed[i], pictures.get(assessed[i].case_id)) for i in order if assessed[i].flag != "ok"]
            calibration = quality.rungs.get(name)
            write_text(staging / QUALITY_HTML, quality_page(str(run_folder.resolve()), name, flag_counts(assessed),
                                                            calibration.bad if calibration else None, flagged))
        write_output_record(staging, "predictions", {
            "run": str(run_folder.resolve()), "rung": name, "inputs": [str(p.resolve()) for p in _paths(inputs)],
            "n_cases": len(cases), "quality": QUALITY_CSV if quality is not None else no_quality,
            "uncertainty_maps": f"{UNCERTAINTY}/: per-voxel normalised entropy x 255" if uncertainty_maps else None})
    log.info("predicted %d case(s) with rung %s into %s", len(written), name, out)
    if assessed:
        log.info("quality: %s (%s)", flag_counts(assessed), out / QUALITY_HTML)
    return written


def _paths(inputs: str | Path | Sequence[str | Path]) -> list[Path]:
    """``inputs`` (one path, or a list of them) as a list of paths."""
    return [Path(inputs)] if isinstance(inputs, (str, Path)) else [Path(p) for p in inputs]


def _inputs_named(inputs: str | Path | Sequence[str | Path]) -> dict[str, Path]:
    """The inputs an output must not overwrite, named for :func:`refuse_overlap`'s message."""
    paths = _paths(inputs)
    return {"the input images": paths[0]} if len(paths) == 1 else {f"the input image {p.name}": p for p in paths}


def _working_image(image: np.ndarray, geometry: Any, fingerprint: Any, source: Path
                   ) -> tuple[np.ndarray, tuple[int, ...] | None]:
    """``image`` (read from ``source``) normalised on the run's working grid, and the shape to resample a
    prediction back to (None when its grid is the working grid)."""
    from automed.data.normalize import normalize
    from automed.data.resample import grid_shape, resample_image

    if fingerprint.target_spacing is None:
        return normalize(image, fingerprint), None
    shape = grid_shape(image.shape[1:], geometry.spacing[::-1], fingerprint.target_spacing)
    if shape == image.shape[1:]:
        return normalize(image, fingerprint), None
    log.info("%s: spacing %s differs from the run's %s; predicting on a %s grid and resampling back to %s",
             source, [round(s, 4) for s in geometry.spacing[::-1]], list(fingerprint.target_spacing), list(shape),
             list(image.shape[1:]))
    return normalize(resample_image(image, shape), fingerprint), tuple(image.shape[1:])


def _open_run(run_folder: Path, rung: str | None) -> tuple[dict, str]:
    """The run's report and the name of the rung to predict with (a fitted one)."""
    from automed.ladder.lock import refuse_if_locked

    refuse_if_locked(run_folder)  # a fit --overwrite of it would replace the files being read
    report_path = run_folder / "report.json"
    if not report_path.is_file():
        raise RunFolderError(f"{run_folder}: no report.json; is this a finished automed run folder?")
    try:
        report = json.loads(report_path.read_text())
        task, rungs, best = report["task"], {r["name"]: r for r in report["rungs"]}, report["best_rung"]
    except (ValueError, KeyError, TypeError) as exc:
        raise RunFolderError(f"{report_path}: damaged ({type(exc).__name__}: {exc}); rebuild it with "
                             f"`automed report {run_folder}`.") from exc
    from automed.ladder.choice import usable_best
    from automed.rungs.fitted import missing_files

    name = rung or usable_best(run_folder, report)
    if name is None and best is not None:
        gone = missing_files(run_folder / "rungs" / best) or [run_folder / "rungs"]
        raise RunFolderError(f"{gone[0]}: missing, so the {best} rung cannot be used, and no other finished rung has "
                             "all its files; the run folder is damaged: fit again.")
    if name is None:
        raise RunFolderError(f"{run_folder}: no rung finished in this run, so there is nothing to predict with.")
    if name not in rungs:
        raise RunFolderError(f"{run_folder}: this run has no rung {name!r}; its rungs are {sorted(rungs)}.")
    if rungs[name].get("status") != "done":
        reason = rungs[name].get("reason") or "it did not finish"
        raise RunFolderError(f"{run_folder}: rung {name!r} was {rungs[name].get('status')} in this run ({reason}); "
                             f"fitted rungs: {sorted(n for n, r in rungs.items() if r.get('status') == 'done')}.")
    if gone := missing_files(run_folder / "rungs" / name):
        raise RunFolderError(f"{gone[0]}: missing, so the {name} rung cannot be used; the run folder is damaged: "
                             "predict with another --rung, or fit again.")
    return {**report, "task": task}, name


def _load_rung(run_folder: Path, name: str, task: str, tta: bool = True):
    """The fitted rung ``name`` (with mirrored test-time augmentation switched off unless ``tta``);
    a missing or damaged model file is one clear error naming it."""
    from automed.rungs.fitted import load_fitted

    folder = run_folder / "rungs" / name
    try:
        model = load_fitted(name, task, folder)
    except AutomedError:
        raise
    except Exception as exc:  # unpickling and torch.load raise many types for one cause: a damaged file
        where = getattr(exc, "filename", None) or folder
        raise RunFolderError(f"{where}: the fitted {name} rung cannot be loaded ({type(exc).__name__}: "
                             f"{str(exc)[:200]}); the run folder is damaged: refit, or predict with another "
                             "--rung.") from exc
    if not tta:  # an ensemble's members carry the setting
        for part in [model, *getattr(model, "members_", [])]:
            if hasattr(part.params, "tta") and part.params.tta:
                log.info("%s: predicting without mirrored test-time augmentation", part.name)
                part.params = replace(part.params, tta=False)
    return model


def predict_classification(run_folder: str | Path, inputs: str | Path | Sequence[str | Path], out: str | Path, rung: str | None = None,
                           split: str | None = None, overwrite: bool = False, progress: bool = True,
                           tta: bool = True, uncertainty_maps: bool = False) -> Path:
    """Write a CSV with ``case``, ``label``, one ``prob_<class>`` column per class and, where the run kept a
    quality record, the quality columns (:func:`automed.quality.record.quality_columns`).

    ``inputs`` is a MedMNIST ``.npz`` (``split`` picks one of train/val/test, default
    all; cases are named ``<split>_<index>``), a CSV manifest, a folder of images
    (searched recursively), one image file or a list of image files.
    """
    import csv
    import io

    from automed.data.atomic import refuse_unwritable, write_text
    from automed.data.classification import ClassificationDataset, ImageCase, open_classification
    from automed.data.inputs import listed_files
    from automed.data.io import image_suffix, strip_suffix

    run_folder, out = Path(run_folder), Path(out)
    report, name = _open_run(run_folder, rung)
    if uncertainty_maps:
        raise DataError(f"{run_folder}: --uncertainty-maps applies to segmentation runs; a classification run's "
                        "uncertainty is the CSV's 'uncertainty' column.")
    listed = listed_files(_paths(inputs))
    refuse_overlap(out, {**_inputs_named(listed), "the run folder": run_folder})
    inputs = listed[0]
    if out.is_dir():
        raise RunFolderError(f"{out}: is a folder; a classification run writes one CSV file, e.g. --out "
                             f"{out / 'predictions.csv'}.")
    if out.exists() and not overwrite:
        raise RunFolderError(f"{out}: already exists; pass --overwrite or choose another --out.")
    if not out.parent.is_dir():
        raise RunFolderError(f"{out}: its folder {out.parent} does not exist.")
    refuse_unwritable(out)
    summary = json.loads((run_folder / "fingerprint.json").read_text())
    n_channels = summary.get("n_channels", 1)
    # runs fitted before the channels were recorded read every colour image as its luminance
    luminance = summary.get("colour_as_luminance", True)
    if len(listed) > 1:
        cases = tuple(ImageCase(strip_suffix(f), None, image_path=f) for f in listed)
        dataset = ClassificationDataset(inputs.parent, "files", cases, (), n_channels=n_channels, luminance=luminance)
    elif inputs.suffix.lower() == ".npz":
        dataset = _unlabelled_npz(inputs, n_channels, luminance)
    elif inputs.suffix.lower() == ".csv":
        dataset = replace(open_classification(inputs, colour=not luminance), n_channels=n_channels, luminance=luminance)
    else:
        files = [inputs] if inputs.is_file() else sorted(p for p in inputs.rglob("*")
                                                         if p.is_file() and image_suffix(p) and not p.name.startswith("."))
        if not files:
            raise DataError(f"{inputs}: holds no images to classify.")
        cases = tuple(ImageCase(str(f.relative_to(inputs)) if inputs.is_dir() else strip_suffix(f), None,
                                image_path=f) for f in files)
        dataset = ClassificationDataset(inputs, "files", cases, (), n_channels=n_channels, luminance=luminance)
    cases = [c for c in dataset.cases if split is None or c.split == split]
    if not cases:
        raise DataError(f"{inputs}: no cases in split {split!r}.")
    from automed.metrics import decide_classes
    from automed.quality.classification import MemberProbabilities, classification_values, descriptors_of

    model = _load_rung(run_folder, name, "classification", tta)
    members = (model.member_probabilities(dataset, cases, progress=progress)
               if isinstance(model, MemberProbabilities) else None)
    proba = model.predict_proba(dataset, cases, progress=progress) if members is None else members.mean(axis=0)
    labels = decide_classes(proba, model.threshold_)
    quality, no_quality = read_quality(run_folder)
    header, quality_rows = [], [[] for _ in cases]
    if quality is None:
        log.warning("%s", no_quality)
    else:
        assessed = [quality.assess(name, case.case_id, row, values) for case, row, values in
                    zip(cases, descriptors_of(dataset, cases), classification_values(proba, members))]
        header, quality_rows = quality_columns(assessed)
        log.info("quality: %s", flag_counts(assessed))
    table = io.StringIO(newline="")
    writer = csv.writer(table)
    writer.writerow(["case", "label"] + [f"prob_{c}" for c in model.classes_] + header)
    for case, k, row, more in zip(cases, labels, proba, quality_rows):
        writer.writerow([case.case_id, model.classes_[k]] + [f"{p:.6f}" for p in row] + more)
    write_text(out, table.getvalue())
    log.info("classified %d case(s) with rung %s into %s", len(cases), name, out)
    return out


def _unlabelled_npz(path: Path, n_channels: int, luminance: bool):
    """A MedMNIST-style ``.npz`` for prediction (labels are optional), read as the run's images were."""
    from automed.data.classification import ClassificationDataset, ImageCase, channels_first, check_image_shapes, read_npz

    arrays = {key.removesuffix("_images"): channels_first(images, colour=not luminance)
              for key, images in read_npz(path, labelled=False).items()}
    check_image_shapes(path, arrays)
    found = next(iter(arrays.values())).shape[1]
    if found != n_channels:
        raise DataError(f"{path}: the images have {found} channel(s), but the run was fitted on images with "
                        f"{n_channels}.")
    cases = tuple(ImageCase(f"{s}_{i}", None, index=i, split=s) for s, a in arrays.items() for i in range(len(a)))
    return ClassificationDataset(path, "medmnist", cases, (), arrays, n_channels=n_channels, luminance=luminance)
