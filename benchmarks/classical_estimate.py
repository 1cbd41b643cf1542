"""Benchmark the classical classification rung's estimate against the seconds it takes.

The rung alone with its default parameters and no budget (its own 600 s bound), on a new run folder
each time (no feature cache): BreastMNIST (780 grey 28x28 images), AdrenalMNIST3D (1,584 grey 28^3
volumes) and the PH2 diagnosis manifest (40 RGB photographs with lesion masks, about 560x765), and, for a
second size of each channel count, the PH2 photographs resized to 28x28 RGB without masks (a MedMNIST-style
``.npz``, 28/3/9 train/val/test images split within each label) and a 450-volume subset of AdrenalMNIST3D at 64^3
(the official splits' first 300/50/100). For each: the estimate, the measured seconds and their ratio, where the time went, the test AUC with its CI and the
library warnings. Goal: every ratio within a factor of 1.5.

Writes ``benchmarks/results/classical_estimate.json``; absent datasets are recorded as skipped.

Usage: .venv/bin/python benchmarks/classical_estimate.py [--only NAME]
"""

from __future__ import annotations

import argparse
import csv
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import automed
from _common import ROOT, run_and_record
from default_classification import CASES, DATA

PH2 = DATA / "ph2_dermoscopy" / "diagnosis.csv"
ADRENAL_64 = DATA / "medmnist" / "adrenalmnist3d_64.npz"


def ph2_28px(workdir: Path) -> Path:
    """The 40 PH2 photographs resized to 28x28 RGB as a MedMNIST-style ``.npz``: of each label, every 5th image
    to test, the second to validation, the rest to training."""
    from skimage.io import imread
    from skimage.transform import resize

    with PH2.open() as f:
        rows = list(csv.DictReader(f))
    labels = sorted({r["label"] for r in rows})
    splits: dict[str, tuple[list, list]] = {s: ([], []) for s in ("train", "val", "test")}
    for label in labels:
        for i, row in enumerate(r for r in rows if r["label"] == label):
            image = resize(imread(PH2.parent / row["image"]), (28, 28), anti_aliasing=True, preserve_range=True)
            split = "test" if i % 5 == 0 else "val" if i % 5 == 1 and i < 5 else "train"
            splits[split][0].append(image.astype(np.uint8))
            splits[split][1].append([labels.index(label)])
    out = workdir / "ph2_28px.npz"
    np.savez(out, **{f"{s}_{k}": np.asarray(v[j]) for s, v in splits.items()
                     for j, k in enumerate(("images", "labels"))})
    return out


def adrenal_64_subset(workdir: Path) -> Path:
    """The first 300/50/100 volumes of AdrenalMNIST3D's official train/val/test splits at 64^3."""
    sizes = {"train": 300, "val": 50, "test": 100}
    with np.load(ADRENAL_64) as full:
        arrays = {f"{s}_{k}": full[f"{s}_{k}"][:n] for s, n in sizes.items() for k in ("images", "labels")}
    out = workdir / "adrenalmnist3d_64_subset.npz"
    np.savez(out, **arrays)
    return out


#: name -> (the file it needs, how to build the data from it in a work folder)
DATASETS: dict[str, tuple[Path, Callable[[Path], Path]]] = {
    **{name: (path, lambda workdir, path=path: path) for name, (path, _) in CASES.items()},
    "ph2_28px": (PH2, ph2_28px), "adrenalmnist3d_64_subset": (ADRENAL_64, adrenal_64_subset)}


def run_one(name: str, workdir: Path) -> dict:
    source, build = DATASETS[name]
    if not source.is_file():
        return {"dataset": name, "status": "skipped", "reason": f"{source} not found"}
    data = build(workdir)
    started = time.monotonic()
    run = automed.fit(automed.Recipe(task="classification", rungs=["classical"]), data, workdir / name,
                      overwrite=True, progress=False)
    wall = time.monotonic() - started
    (rung,) = run.report_["rungs"]
    estimate, spent = rung["estimate"]["seconds"], rung["cost"]["fit_seconds"]
    ratio = spent / estimate
    return {"dataset": name, "status": "done", "wall_seconds": wall, "estimate_s": estimate, "fit_s": spent,
            "actual_over_estimate": ratio, "estimate_note": rung["estimate"]["note"],
            "stage_seconds": rung["details"]["stage_seconds"], "seconds_per_fit": rung["details"]["seconds_per_fit"],
            "n_features_kept": rung["details"]["n_features"], "test_auc": rung["test"]["auc"],
            "library_warnings": rung["details"].get("library_warnings"), "hardware": run.report_["hardware"],
            "goals_met": {"estimate_within_1.5x": 1 / 1.5 <= ratio <= 1.5}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(DATASETS))
    args = parser.parse_args()
    names = [args.only] if args.only else list(DATASETS)
    run_and_record(names, run_one, ROOT / "benchmarks" / "results" / "classical_estimate.json")


if __name__ == "__main__":
    main()
