"""Benchmark the classical classification rung on MedMNIST (official test splits), and
radiomics extraction throughput against a plain sequential pyradiomics loop.

Writes ``benchmarks/results/classical_classification.json``. Datasets that are absent
are skipped and recorded as such.

Usage: .venv/bin/python benchmarks/classical_classification.py [--only NAME]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import ROOT, timed_fit
MEDMNIST = ROOT.parent / "shared" / "data" / "medmnist"
CASES = {
    "breastmnist": ("breastmnist.npz", "medmnist-2d-classification.yaml",
                    {"min_auc": 0.87, "min_accuracy": 0.83, "max_fit_seconds": 300}),
    "adrenalmnist3d": ("adrenalmnist3d.npz", "ct-3d-classification.yaml", {"min_auc": 0.84, "min_accuracy": 0.80}),
}


def run_dataset(name: str, workdir: Path) -> dict:
    file, recipe_file, goals = CASES[name]
    data = MEDMNIST / file
    if not data.is_file():
        return {"dataset": name, "status": "skipped", "reason": f"{data} not found"}
    run, _, wall = timed_fit(data, recipe_file, workdir / name)
    rung = run.report_["rungs"][0]
    test = rung["test"]
    result = {
        "dataset": name, "status": "done", "recipe": recipe_file, "wall_seconds": wall,
        "test_auc": test["auc"], "test_accuracy": test["accuracy"], "test_balanced_accuracy": test["balanced_accuracy"],
        "per_class": rung["per_class"], "threshold": rung["threshold"], "confusion_matrix": test["confusion_matrix"],
        "model": rung["details"]["model"], "ensemble_history": rung["details"]["search"]["ensemble"],
        "n_features": rung["details"]["n_features"], "peak_rss_bytes": rung["cost"]["peak_rss_bytes"],
        "hardware": run.report_["hardware"],
    }
    checks = {"auc": test["auc"]["mean"] >= goals["min_auc"], "accuracy": test["accuracy"]["mean"] >= goals["min_accuracy"]}
    if "max_fit_seconds" in goals:
        checks["fit_seconds"] = wall <= goals["max_fit_seconds"]
    result["goals"] = goals
    result["goals_met"] = checks
    return result


def plain_pyradiomics(images: np.ndarray) -> float:
    """Seconds for a sequential loop calling pyradiomics directly, with the same settings."""
    import logging

    import SimpleITK as sitk
    from radiomics import featureextractor

    from automed.features.radiomics import RADIOMICS_CLASSES

    logging.getLogger("radiomics").setLevel(logging.ERROR)
    two_d = images.ndim == 3
    started = time.monotonic()
    for image in images:
        extractor = featureextractor.RadiomicsFeatureExtractor(binCount=32, force2D=two_d, force2Ddimension=0,
                                                               minimumROIDimensions=1, preCrop=True)
        extractor.disableAllFeatures()
        for name in RADIOMICS_CLASSES:
            extractor.enableFeatureClassByName(name)
        volume = image[None] if two_d else image
        extractor.execute(sitk.GetImageFromArray(volume.astype(np.float32)),
                          sitk.GetImageFromArray(np.ones(volume.shape, np.uint8)))
    return time.monotonic() - started


def throughput(file: str, n_cases: int) -> dict:
    """Cases per second: plain sequential pyradiomics vs automed's parallel extraction (all cores)."""
    from automed.data.classification import open_classification
    from automed.rungs.classification.classical import ClassicalClassifierParams, ClassicalClassifierRung

    data = MEDMNIST / file
    if not data.is_file():
        return {"status": "skipped", "reason": f"{data} not found"}
    dataset = open_classification(data)
    cases = list(dataset.cases[:n_cases])
    images = dataset.arrays["train"][:n_cases]
    plain_s = plain_pyradiomics(images)
    rung = ClassicalClassifierRung(ClassicalClassifierParams(feature_sets=("radiomics",)))
    started = time.monotonic()
    rung.features_of(dataset, cases, n_jobs=-1, progress=False)
    automed_s = time.monotonic() - started
    return {"status": "done", "dataset": file, "n_cases": len(cases), "n_cores": os.cpu_count(),
            "plain_sequential_cases_per_s": len(cases) / plain_s,
            "automed_parallel_cases_per_s": len(cases) / automed_s, "speedup": plain_s / automed_s,
            "note": "automed's time includes starting the worker processes"}


THROUGHPUT = {"throughput_breastmnist": ("breastmnist.npz", 546), "throughput_adrenalmnist3d": ("adrenalmnist3d.npz", 300)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=[*CASES, *THROUGHPUT])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "classical_classification.json")
    args = parser.parse_args()
    previous = json.loads(args.out.read_text()) if args.out.is_file() else {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in ([args.only] if args.only else [*CASES, *THROUGHPUT]):
            previous[name] = throughput(*THROUGHPUT[name]) if name in THROUGHPUT else run_dataset(name, Path(tmp))
            print(json.dumps({name: previous[name]}, indent=2, default=str))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(previous, indent=2, default=str))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
