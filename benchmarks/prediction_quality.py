"""Benchmark the quality record of predictions: does the out-of-distribution score pick out scans from "another
scanner" and images with an artefact among normal unseen ones, and does the quality score pick out the cases a
rung gets wrong?

Hippocampus (MSD Task04): a run fitted on the 200 labelled cases predicts 40 of the unlabelled ``imagesTs`` cases as
they are, and copies of the same 40 shifted as another scanner would shift them (MONAI's bias field, gamma
contrast, Gaussian noise, simulated lower resolution) or with a metal-like artefact pasted in (a bright blob with
streaks). BreastMNIST: a run fitted on the training and validation images predicts the 156 test images as they
are, shifted (contrast, noise, blur) and 40 images of another modality (the middle slice of AdrenalMNIST3D CT
volumes). For each kind: the AUC of the distance against the normal images (with a bootstrap CI) and the share
flagged; on the normal test images of BreastMNIST, the AUC of the quality score for a wrong class and the error
rate among flagged against unflagged images; the validation-case figures the run's record was calibrated on.

Writes ``benchmarks/results/prediction_quality.json``; an absent dataset is recorded as skipped.

Usage: .venv/bin/python benchmarks/prediction_quality.py [--hippocampus-run RUN] [--breastmnist-run RUN]
(reuses fitted runs, copied; their quality record is written when they lack one, as the fit writes it).
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import time
from pathlib import Path

import numpy as np

import automed
from _common import ROOT, run_and_record

DATA = ROOT.parent / "shared" / "data"
HIPPOCAMPUS = DATA / "hippocampus"
BREAST = DATA / "medmnist" / "breastmnist.npz"
ADRENAL = DATA / "medmnist" / "adrenalmnist3d.npz"
N_UNSEEN = 40
SEED = 0


def _auc(shifted: list[float], normal: list[float]) -> dict:
    from automed.quality.calibration import auc_with_ci

    scores = np.array(shifted + normal, dtype=float)
    return auc_with_ci(np.r_[np.ones(len(shifted), bool), np.zeros(len(normal), bool)], scores, SEED)


def _flag_shares(rows: list[dict]) -> dict:
    return {flag: sum(r["flag"] == flag for r in rows) / len(rows) for flag in ("ok", "review", "out_of_distribution")}


def _with_quality(run: Path, workdir: Path, name: str) -> Path:
    """A copy of ``run`` holding a quality record (written as the fit writes it where the run lacks one)."""
    from automed.ladder.reopen import reopen_run
    from automed.quality.record import QUALITY_JSON
    from automed.results import read_result
    from automed.tasks import get_task

    copy = workdir / f"{name}_run"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("cache", "learning_curve*"))
    if not (copy / QUALITY_JSON).is_file():
        reopened = reopen_run(copy)
        done = tuple(r for r in (read_result(copy / "rungs" / s.name) for s in reopened.recipe.rungs
                                 if (copy / "rungs" / s.name / "result.json").is_file()) if r.done)
        get_task(reopened.recipe.task).finish(copy, reopened.recipe, reopened.opened, done)
    return copy


def _fit(data: Path, recipe: automed.Recipe, out: Path) -> Path:
    automed.fit(recipe, data, out, overwrite=True, progress=False)
    return out


def _calibration(run: Path) -> dict:
    record = json.loads((run / "quality.json").read_text())
    return {"seconds": record["seconds"], "notes": record["notes"],
            "rungs": {n: {k: v for k, v in c.items() if k != "validation"} for n, c in record["rungs"].items()}}


# -- hippocampus -----------------------------------------------------------------------------------------------

def _artefact(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A metal-like artefact: a bright sphere of radius 3 voxels inside the volume and streaks through it along
    the first axis (alternating bright and dark lines, as beam hardening draws them)."""
    out = image.copy()
    centre = [int(rng.integers(s // 4, 3 * s // 4)) for s in image.shape]
    grids = np.meshgrid(*[np.arange(s) for s in image.shape], indexing="ij")
    sphere = sum((g - c) ** 2 for g, c in zip(grids, centre)) <= 9
    bright = float(np.percentile(image, 99.5)) * 5
    out[sphere] = bright
    for k, offset in enumerate(range(-6, 7, 2)):
        line = (slice(None), np.clip(centre[1] + offset, 0, image.shape[1] - 1), centre[2])
        out[line] = bright * (0.5 if k % 2 else -0.1) + out[line] * 0.5
    return out


def _shifts() -> dict:
    """The scanner-like shifts (MONAI's transforms, seeded when applied)."""
    from monai.transforms import (RandAdjustContrast, RandBiasField, RandGaussianNoise,
                                  RandSimulateLowResolution)

    return {"bias_field": RandBiasField(coeff_range=(0.05, 0.1), prob=1.0),
            "gamma": RandAdjustContrast(gamma=(2.0, 2.5), prob=1.0),
            "noise": RandGaussianNoise(prob=1.0, std=1.0),  # scaled below to a fifth of the image's spread
            "low_resolution": RandSimulateLowResolution(prob=1.0, zoom_range=(0.4, 0.5))}


def _shifted(kind: str, transform, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    import torch

    if kind == "artefact":
        return _artefact(image, rng)
    transform.set_random_state(int(rng.integers(2**31)))
    if kind == "noise":
        spread = float(np.percentile(image, 99) - np.percentile(image, 1))
        return image + rng.normal(0, 0.2 * spread, image.shape).astype(np.float32)
    if kind == "gamma":
        low, high = float(image.min()), float(image.max())
        scaled = (image - low) / max(high - low, 1e-6)
        return low + (high - low) * np.asarray(transform(torch.as_tensor(scaled[None]))[0])
    return np.asarray(transform(torch.as_tensor(image[None]))[0])


def hippocampus(workdir: Path, given: Path | None) -> dict:
    import SimpleITK as sitk

    if not (HIPPOCAMPUS / "dataset.json").is_file():
        return {"status": "skipped", "reason": f"{HIPPOCAMPUS} not found"}
    if given is None:
        recipe = automed.Recipe(task="segmentation", rungs=["classical", "unet2d"], budget="20min")
        given = _fit(HIPPOCAMPUS, recipe, workdir / "hippocampus_fit")
    run = _with_quality(given, workdir, "hippocampus")
    unseen = sorted((HIPPOCAMPUS / "imagesTs").glob("*.nii.gz"))[:N_UNSEEN]
    rng = np.random.default_rng(SEED)
    images = workdir / "hippocampus_images"
    shutil.rmtree(images, ignore_errors=True)
    images.mkdir()
    kinds = {**_shifts(), "artefact": None}
    for path in unseen:
        shutil.copy(path, images / f"normal__{path.name}")
        source = sitk.ReadImage(str(path))
        array = sitk.GetArrayFromImage(source).astype(np.float32)
        for kind, transform in kinds.items():
            out = sitk.GetImageFromArray(_shifted(kind, transform, array, rng).astype(np.float32))
            out.CopyInformation(source)
            sitk.WriteImage(out, str(images / f"{kind}__{path.name}"))
    report = json.loads((run / "report.json").read_text())
    result = {"status": "done", "run": {"source": str(given), "rungs": [r["name"] for r in report["rungs"]
                                                                         if r["status"] == "done"],
                                        "best_rung": report["best_rung"], "fit_seconds": report["fit_seconds"]},
              "unseen_cases": N_UNSEEN, "calibration": _calibration(run), "rungs": {}}
    for rung in result["run"]["rungs"]:
        if rung == "ensemble":
            continue
        started = time.monotonic()
        out = workdir / f"hippocampus_pred_{rung}"
        shutil.rmtree(out, ignore_errors=True)
        automed.load(run).predict(images, out, rung=rung)
        seconds = time.monotonic() - started
        rows = list(csv.DictReader((out / "quality.csv").open()))
        by_kind: dict[str, list[dict]] = {}
        for row in rows:
            by_kind.setdefault(row["case"].split("__")[0], []).append(row)
        normal = by_kind.pop("normal")
        result["rungs"][rung] = {
            "predict_seconds": seconds, "n_images": len(rows), "normal": {"flags": _flag_shares(normal)},
            **{kind: {"n": len(found), "flags": _flag_shares(found),
                      "auc_distance": _auc([float(r["distance"]) for r in found],
                                           [float(r["distance"]) for r in normal]),
                      "auc_quality_score": _auc([float(r["quality_score"]) for r in found],
                                                [float(r["quality_score"]) for r in normal])}
               for kind, found in sorted(by_kind.items())}}
    result["hardware"] = report["hardware"]
    return result


# -- BreastMNIST -------------------------------------------------------------------------------------------------

def breastmnist(workdir: Path, given: Path | None) -> dict:
    from scipy import ndimage

    if not BREAST.is_file():
        return {"status": "skipped", "reason": f"{BREAST} not found"}
    if given is None:
        given = _fit(BREAST, automed.Recipe(task="classification", rungs=["classical"]), workdir / "breast_fit")
    run = _with_quality(given, workdir, "breastmnist")
    rng = np.random.default_rng(SEED)
    with np.load(BREAST) as z:
        test, labels = z["test_images"].astype(np.float32), z["test_labels"].ravel()
    kinds = {"normal": test,
             "contrast": 255 * (test / 255) ** 2.5,
             "noise": test + rng.normal(0, 40, test.shape),
             "blur": np.stack([ndimage.gaussian_filter(t, 1.5) for t in test])}
    if ADRENAL.is_file():
        with np.load(ADRENAL) as z:
            volumes = z["test_images"][:N_UNSEEN].astype(np.float32)
        middle = volumes[:, volumes.shape[1] // 2]
        low, high = middle.min(axis=(1, 2), keepdims=True), middle.max(axis=(1, 2), keepdims=True)
        kinds["other_modality_ct"] = 255 * (middle - low) / np.maximum(high - low, 1e-6)
    arrays = {}
    for kind, images in kinds.items():
        arrays[f"{kind}_images"] = np.clip(images, 0, 255).astype(np.uint8)
    files = {}
    for kind, images in arrays.items():
        name = kind.removesuffix("_images")
        files[name] = workdir / f"breast_{name}.npz"
        np.savez(files[name], test_images=images, test_labels=np.zeros((len(images), 1), np.uint8))
    report = json.loads((run / "report.json").read_text())
    rung = report["best_rung"]
    rows = {}
    for name, path in files.items():
        out = workdir / f"breast_pred_{name}.csv"
        out.unlink(missing_ok=True)
        automed.load(run).predict(path, out, split="test")
        rows[name] = list(csv.DictReader(out.open()))
    normal = rows.pop("normal")
    classes = [c.removeprefix("prob_") for c in normal[0] if c.startswith("prob_")]
    wrong = np.array([r["label"] != str(labels[i]) for i, r in enumerate(normal)])
    flagged = np.array([r["flag"] != "ok" for r in normal])
    score = np.array([float(r["quality_score"]) for r in normal])
    from automed.quality.calibration import auc_with_ci

    result = {"status": "done", "run": {"source": str(given), "rung": rung, "fit_seconds": report["fit_seconds"],
                                        "classes": classes},
              "calibration": _calibration(run),
              "normal_test": {"n": len(normal), "n_wrong": int(wrong.sum()), "flags": _flag_shares(normal),
                              "auc_quality_score_for_wrong": auc_with_ci(wrong, score, SEED),
                              "error_rate_flagged": float(wrong[flagged].mean()) if flagged.any() else None,
                              "error_rate_unflagged": float(wrong[~flagged].mean()) if (~flagged).any() else None,
                              "n_flagged": int(flagged.sum())},
              "shifted": {kind: {"n": len(found), "flags": _flag_shares(found),
                                 "auc_distance": _auc([float(r["distance"]) for r in found],
                                                      [float(r["distance"]) for r in normal])}
                          for kind, found in rows.items()},
              "hardware": report["hardware"]}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hippocampus-run", type=Path, help="A fitted hippocampus run to reuse (copied).")
    parser.add_argument("--breastmnist-run", type=Path, help="A fitted BreastMNIST run to reuse (copied).")
    parser.add_argument("--keep", type=Path, help="Keep the work folder here.")
    parser.add_argument("--only", choices=["hippocampus", "breastmnist"])
    args = parser.parse_args()
    given = {"hippocampus": args.hippocampus_run, "breastmnist": args.breastmnist_run}
    jobs = {"hippocampus": hippocampus, "breastmnist": breastmnist}
    names = [args.only] if args.only else list(jobs)
    run_and_record(names, lambda name, workdir: {"dataset": name, **jobs[name](workdir, given[name])},
                   ROOT / "benchmarks" / "results" / "prediction_quality.json", keep=args.keep)


if __name__ == "__main__":
    main()
