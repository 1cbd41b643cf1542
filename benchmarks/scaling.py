"""Benchmark what the segmentation rungs cost as volumes grow to CT size, and the cost law.

Synthetic CT-like volumes (an ellipsoidal organ split into two classes in noisy soft tissue,
Hounsfield-like intensities, spacing 1.5 x 0.8 x 0.8 mm), 3 cases per size, written as
uncompressed NIfTI in the MSD layout:

* ``classical``: fitted (3 folds, 2 search trials, no budget) at 64^3, 128^3, 256^3 and
  300 x 512 x 512 with 1 channel, and at 128^3 and 300 x 512 x 512 with 2 channels; each run
  then predicts one case of its own size;
* ``unet3d``: fitted briefly at 128^3 (the default configuration, 1 epoch: the weights do not
  change the cost of inference, the architecture, patch and test-time mirroring do), then
  predicting one case of each size up to 192^3 with its 8 mirrors; and fitted the same way on
  three 300 x 512 x 512 cases (training reads patch windows from memory-mapped cases; no
  mirroring in its evaluation), then predicting 128^3 and 300 x 512 x 512 without mirroring
  (``automed predict --no-tta``). Sizes not measured are extrapolated by the cost law and marked so.

Fit time and peak RSS come from the run's report (the peak includes the worker processes);
each prediction runs in its own process (Linux: its peak is read from /proc), whose wall time
and peak RSS are recorded. The cost law is a least-squares line per rung: seconds = a + b x voxels, bytes
= c + d x voxels. Goals on 2 cores: predicting one 300 x 512 x 512 case takes <= 60 s with
classical and <= 120 s with unet3d; peak RSS <= 8 GB for fit and predict. Entries run one
after the other, in the order the goals need them; ``--max-minutes`` (default 30) stops starting new ones.

Writes ``benchmarks/results/scaling.json``.

Usage: .venv/bin/python benchmarks/scaling.py [--only NAME] [--max-minutes M] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import automed
from _common import ROOT

OUT = ROOT / "benchmarks" / "results" / "scaling.json"
CT = (300, 512, 512)
SPACING_XYZ = (0.8, 0.8, 1.5)
N_CASES = 3
MEMORY_GOAL = 8 * 2**30
PREDICT_GOALS_S = {"classical": 60.0, "unet3d": 120.0}
# name -> (rung, channels, fitted shape, shapes predicted, test-time mirroring)
ENTRIES = {  # in the order they run: what the goals need first
    "classical_1ch_64": ("classical", 1, (64,) * 3, [(64,) * 3], True),
    "classical_1ch_128": ("classical", 1, (128,) * 3, [(128,) * 3], True),
    "unet3d_1ch_128": ("unet3d", 1, (128,) * 3, [(64,) * 3, (128,) * 3, (192,) * 3], True),
    "classical_1ch_ct": ("classical", 1, CT, [CT], True),
    "unet3d_1ch_ct": ("unet3d", 1, CT, [(128,) * 3, CT], False),
    "classical_2ch_128": ("classical", 2, (128,) * 3, [(128,) * 3], True),
    "classical_1ch_256": ("classical", 1, (256,) * 3, [(256,) * 3], True),
    "classical_2ch_ct": ("classical", 2, CT, [CT], True),
}
UNET3D = {"n_trials": 0, "max_epochs": 1, "min_epochs": 1, "iterations": 2}
PARAMS = {"classical": {"n_trials": 2, "models": ["lightgbm"]}, "unet3d": UNET3D,
          "unet3d_1ch_ct": {**UNET3D, "tta": False}}
# The peak is the process's own high-water mark (VmHWM): ru_maxrss would carry over the benchmark
# process's own peak, which Linux keeps across fork and exec.
PREDICT_ONE = """
import json, re, sys, time
from pathlib import Path
import automed
t = time.monotonic()
automed.load(sys.argv[1]).predict(sys.argv[2], sys.argv[3], rung=sys.argv[4], tta=sys.argv[5] == "tta")
wall = time.monotonic() - t
hwm = int(re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1))
print(json.dumps({"seconds": wall, "peak_rss_bytes": hwm * 1024}))
"""


def write_case(folder: Path, name: str, shape: tuple[int, ...], channels: int, rng: np.random.Generator) -> None:
    """One synthetic CT-like case: images ``name_0000.nii`` (one per channel) and its label."""
    import SimpleITK as sitk

    axes = np.ogrid[tuple(slice(0, n) for n in shape)]
    centre = [n / 2 + rng.uniform(-0.05, 0.05) * n for n in shape]
    r2 = sum(((a - c) / (n / 4)) ** 2 for a, c, n in zip(axes, centre, shape))
    label = (r2 < 1).astype(np.uint8)
    label[(r2 < 1) & (axes[-1] > centre[-1])] = 2
    del r2
    for c in range(channels):
        image = rng.normal(0, 20, shape).astype(np.float32)
        image += np.float32(40 + 30 * c) + np.float32(60 + 20 * c) * label
        itk = sitk.GetImageFromArray(image)
        itk.SetSpacing(SPACING_XYZ)
        sitk.WriteImage(itk, str(folder / "imagesTr" / f"{name}_{c:04d}.nii"))
    itk = sitk.GetImageFromArray(label)
    itk.SetSpacing(SPACING_XYZ)
    sitk.WriteImage(itk, str(folder / "labelsTr" / f"{name}.nii"))


def make_dataset(folder: Path, shape: tuple[int, ...], channels: int, seed: int) -> Path:
    """An nnU-Net-layout dataset of ``N_CASES`` synthetic cases (modality CT)."""
    rng = np.random.default_rng(seed)
    for sub in ("imagesTr", "labelsTr"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for i in range(N_CASES):
        write_case(folder, f"case_{i:03d}", shape, channels, rng)
    meta = {"name": "scaling", "channel_names": {str(c): "CT" if c == 0 else f"CT_{c}" for c in range(channels)},
            "labels": {"background": 0, "left": 1, "right": 2}, "numTraining": N_CASES, "file_ending": ".nii"}
    (folder / "dataset.json").write_text(json.dumps(meta))
    return folder


def predict_one(run_folder: Path, shape: tuple[int, ...], channels: int, rung: str, work: Path, tta: bool) -> dict:
    """Predict one case of ``shape`` in a fresh process; its wall seconds and peak RSS."""
    inputs = work / f"predict_{'x'.join(map(str, shape))}_{channels}ch"
    if not inputs.is_dir():
        (inputs / "imagesTr").mkdir(parents=True)
        (inputs / "labelsTr").mkdir()
        write_case(inputs, "case_900", shape, channels, np.random.default_rng(900))
    out = work / f"pred_{rung}_{inputs.name}_{'tta' if tta else 'no_tta'}"
    done = subprocess.run([sys.executable, "-c", PREDICT_ONE, str(run_folder), str(inputs / "imagesTr"), str(out), rung,
                           "tta" if tta else "no_tta"], capture_output=True, text=True, check=True)
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    return {"shape": list(shape), "voxels": int(np.prod(shape)), "tta": tta, **measured}


def run_entry(name: str, work: Path) -> dict:
    rung, channels, shape, predicted, tta = ENTRIES[name]
    data = make_dataset(work / f"data_{name}", shape, channels, seed=len(name))
    recipe = automed.Recipe(task="segmentation", n_folds=N_CASES,
                            rungs=[{"name": rung, "params": PARAMS.get(name, PARAMS[rung])}])
    started = time.monotonic()
    run = automed.fit(recipe, data, work / f"run_{name}", overwrite=True, progress=False)
    wall = time.monotonic() - started
    result = run.report_["rungs"][0]
    cost = result.get("cost") or {}
    entry = {"rung": rung, "channels": channels, "shape": list(shape), "voxels_per_case": int(np.prod(shape)), "tta": tta,
             "n_cases": N_CASES, "status": result["status"], "reason": result.get("reason"),
             "dice": (result.get("metric") or {}).get("mean"), "fit_wall_seconds": wall,
             "fit_seconds": cost.get("fit_seconds"), "fit_peak_rss_bytes": cost.get("peak_rss_bytes"),
             "estimate": result.get("estimate"), "shrunk": result.get("shrunk"),
             "config": (result.get("details") or {}).get("config"), "hardware": run.report_["hardware"]}
    if result["status"] == "done":
        entry["predict"] = [predict_one(run.folder, s, channels, rung, work, tta) for s in predicted]
    return entry


def _variant(rung: str, tta: bool) -> str:
    return rung if tta else f"{rung}_no_tta"


def cost_law(results: dict) -> dict:
    """Least-squares lines of seconds and peak bytes against voxels, per rung and mirroring, for
    fit (per case) and predict (one case). Entries written before mirroring was recorded mirrored."""
    laws = {}
    for rung in PREDICT_GOALS_S:
        for tta in (True, False):
            entries = [e for e in results.values() if e.get("rung") == rung]
            points = {"predict": [(p["voxels"], p["seconds"], p["peak_rss_bytes"]) for e in entries
                                  for p in e.get("predict", []) if p.get("tta", True) == tta],
                      "fit": [(e["voxels_per_case"], e["fit_seconds"] / e["n_cases"], e["fit_peak_rss_bytes"])
                              for e in entries if e.get("fit_seconds") and e.get("tta", True) == tta]}
            for kind, rows in points.items():
                if len({v for v, _, _ in rows}) < 2:
                    continue
                v, s, m = (np.array(col, dtype=float) for col in zip(*rows))
                (b, a), (d, c) = np.polyfit(v, s, 1), np.polyfit(v, m, 1)
                ct = int(np.prod(CT))
                laws[f"{_variant(rung, tta)}_{kind}"] = {
                    "seconds": f"{a:.1f} s + {b * 1e6:.2f} s per M voxels",
                    "bytes": f"{c / 2**30:.2f} GiB + {d:.0f} bytes per voxel",
                    "seconds_per_mvoxel": b * 1e6, "bytes_per_voxel": d, "n_points": len(rows),
                    "at_300x512x512": {"seconds": a + b * ct, "peak_rss_bytes": c + d * ct,
                                       "measured": any(x == ct for x in v)}}
    return laws


def goals(results: dict, laws: dict) -> dict:
    met = {}
    for rung, limit in PREDICT_GOALS_S.items():
        for tta in (True, False):
            measured = [p["seconds"] for e in results.values() if e.get("rung") == rung
                        for p in e.get("predict", []) if tuple(p["shape"]) == CT and p.get("tta", True) == tta]
            law = laws.get(f"{_variant(rung, tta)}_predict")
            if measured or law:
                met[f"{_variant(rung, tta)}_predicts_300x512x512_within_{limit:g}_s"] = (
                    {"measured": bool(max(measured) <= limit)} if measured else
                    {"extrapolated": bool(law["at_300x512x512"]["seconds"] <= limit)})
    peaks = [e.get("fit_peak_rss_bytes") or 0 for e in results.values()] + \
        [p["peak_rss_bytes"] for e in results.values() for p in e.get("predict", [])]
    met["peak_rss_within_8_gb"] = bool(peaks) and bool(max(peaks) <= MEMORY_GOAL)
    return met


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(ENTRIES))
    parser.add_argument("--max-minutes", type=float, default=30.0, help="Start no entry after this many minutes.")
    parser.add_argument("--keep", type=Path, help="Keep the data and run folders here.")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    previous = json.loads(args.out.read_text()) if args.out.is_file() else {}
    results = previous.get("entries", {})
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        for name in [args.only] if args.only else list(ENTRIES):
            if args.max_minutes is not None and time.monotonic() - started > args.max_minutes * 60:
                results.setdefault(name, {"status": "not run", "reason": f"--max-minutes {args.max_minutes:g} reached"})
                continue
            results[name] = run_entry(name, work)
            print(json.dumps({name: results[name]}, indent=2), flush=True)
            laws = cost_law(results)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps({"entries": results, "cost_law": laws, "goals_met": goals(results, laws)},
                                           indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
