"""The GPU path in one short run: estimated against measured peak VRAM, throughput and scores per deep rung.

Fits, one after the other:

* the hippocampus segmentation ladder (``../shared/data/hippocampus``) under a small budget;
* the same with ``--max-vram 8GB``, to show the plan shrinking to the limit;
* the BreastMNIST classification ladder (``../shared/data/medmnist/breastmnist.npz``).

For every deep rung it records the probe's estimated training memory, the measured peak VRAM
(``torch.cuda.max_memory_allocated``; none on a CPU) and their ratio (the goal: within 20 %),
steps per second, seconds per epoch, out-of-memory events, what was shrunk, and the Dice or AUC
reached. Goal on one GPU: at most 10 minutes in all.

``--device cpu`` hides any GPU (``CUDA_VISIBLE_DEVICES=""``) and uses fewer cases, so the script
keeps working where there is none; ``--tiny`` trains a few steps only (what the tests run).

Writes ``benchmarks/results/gpu_check.json`` (one entry per device).

Usage: .venv/bin/python benchmarks/gpu_check.py [--device cuda|cpu] [--minutes 3] [--tiny]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "benchmarks" / "results" / "gpu_check.json"
TINY_SEGMENTATION = {"n_trials": 0, "max_epochs": 2, "min_epochs": 1, "iterations": 2, "widths": [8], "depths": [3],
                     "batch_sizes": [2], "tta": False}
TINY_CLASSIFICATION = {"n_trials": 0, "max_epochs": 2, "min_epochs": 1, "widths": [4], "depths": [1],
                       "batch_sizes": [16], "n_models": 1}


def subset(source: Path, n_cases: int | None, work: Path) -> Path:
    """The first ``n_cases`` of an MSD dataset (symbolic links), or the dataset itself."""
    if n_cases is None:
        return source
    info = json.loads((source / "dataset.json").read_text())
    cases = sorted(info["training"], key=lambda e: e["image"])[:n_cases]
    target = work / f"{source.name}_{n_cases}"
    for kind in ("imagesTr", "labelsTr"):
        (target / kind).mkdir(parents=True, exist_ok=True)
    for entry in cases:
        for key in ("image", "label"):
            path = entry[key].removeprefix("./")
            (target / path).symlink_to(source / path)
    (target / "dataset.json").write_text(json.dumps({**info, "training": cases, "numTraining": len(cases)}))
    return target


def deep_rungs(run: Any) -> dict[str, dict[str, Any]]:
    """Per deep rung: estimated and measured memory, throughput, epoch time, events and the score."""
    out = {}
    for rung in run.report_["rungs"]:
        details, cost = rung.get("details") or {}, rung.get("cost") or {}
        trainings = details.get("trainings") or details.get("training")
        if rung["status"] != "done" or not trainings:
            if rung["status"] != "done" and rung["name"] != "classical":
                out[rung["name"]] = {"status": rung["status"], "reason": rung.get("reason")}
            continue
        estimate, peak = cost.get("est_train_vram_bytes"), cost.get("peak_vram_bytes")
        epochs = sum(t.get("epochs", 0) for t in trainings)
        metric = (rung.get("comparison") or {}).get("metric") or rung.get("metric") or {}
        out[rung["name"]] = {
            "status": "done", "device": cost.get("device"), "est_train_vram_bytes": estimate, "peak_vram_bytes": peak,
            "peak_over_estimate": None if not (estimate and peak) else peak / estimate,
            "within_20_percent": None if not (estimate and peak) else abs(peak / estimate - 1) <= 0.2,
            "steps_per_second": (details.get("throughput") or {}).get("steps_per_second"),
            "data_share": (details.get("throughput") or {}).get("data_share"),
            "epoch_seconds": sum(t.get("seconds", 0.0) for t in trainings) / max(1, epochs),
            "epochs": epochs, "events": [e for t in trainings for e in t.get("events", [])],
            "shrunk": rung.get("shrunk"), "batch_size": (details.get("config") or {}).get("batch_size"),
            "fit_seconds": cost.get("fit_seconds"), "gpu_hours": cost.get("gpu_hours"),
            "metric": metric.get("name"), "score": metric.get("mean"),
            "score_ci": [metric.get("ci_low"), metric.get("ci_high")], "n": metric.get("n")}
    return out


def fit(name: str, recipe: Any, data: Path, work: Path) -> dict[str, Any]:
    import automed

    started = time.monotonic()
    run = automed.fit(recipe, data, work / name, progress=False)
    entry = {"wall_seconds": time.monotonic() - started, "budget_s": recipe.budget_s,
             "max_vram_bytes": recipe.max_vram_bytes, "recommended": run.best(), "rungs": deep_rungs(run)}
    print(json.dumps({name: entry}, indent=1, default=str), flush=True)
    return entry


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], default=None, help="Default: cuda when present.")
    parser.add_argument("--minutes", type=float, default=None, help="Budget per ladder (default 3 on cuda, 4 on cpu).")
    parser.add_argument("--tiny", action="store_true", help="A few training steps per rung (the tests' check).")
    parser.add_argument("--segmentation", type=Path, default=DATA / "hippocampus")
    parser.add_argument("--classification", type=Path, default=DATA / "medmnist" / "breastmnist.npz")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # before torch is imported: no GPU is seen
    import torch

    import automed

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is visible")
    if not args.segmentation.is_dir() or not args.classification.is_file():
        print(f"{args.segmentation} or {args.classification} not found: skipped")
        return {}
    minutes = args.minutes or (3.0 if device == "cuda" else 4.0)
    budget = None if args.tiny else minutes * 60
    seg_rungs = ["classical", "unet2d", "unet3d", "unetpp"]
    cls_rungs = ["classical", "cnn"]
    if args.tiny:  # the deep rungs only, a few steps each: the tests' check that the script works
        seg_rungs = [{"name": n, "params": TINY_SEGMENTATION} for n in seg_rungs[1:]]
        cls_rungs = [{"name": "cnn", "params": TINY_CLASSIFICATION}]
    work = Path(tempfile.mkdtemp(prefix="gpu_check_"))
    try:
        seg_data = subset(args.segmentation, None if device == "cuda" else 40, work)
        seg = automed.Recipe(task="segmentation", budget_s=budget, full_ladder=True, rungs=tuple(seg_rungs))
        cls = automed.Recipe(task="classification", budget_s=budget, full_ladder=True, rungs=tuple(cls_rungs))
        began = time.monotonic()
        results = {"segmentation": fit("segmentation", seg, seg_data, work),
                   "segmentation_max_vram_8gb": fit("segmentation_max_vram_8gb", seg.replace(max_vram_bytes=8 * 2**30),
                                                    seg_data, work),
                   "classification": fit("classification", cls, args.classification, work)}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    from automed.environment import hardware

    entry = {"device": device, "gpu": hardware()["gpu"], "tiny": args.tiny, "minutes_per_ladder": None if args.tiny
             else minutes, "total_seconds": time.monotonic() - began, "torch": torch.__version__, **results}
    previous = json.loads(args.out.read_text()) if args.out.is_file() else {}
    previous[device + ("_tiny" if args.tiny else "")] = entry
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(previous, indent=2, default=str))
    print(f"wrote {args.out}")
    return entry


if __name__ == "__main__":
    main()
