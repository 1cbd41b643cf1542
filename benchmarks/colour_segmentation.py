"""Benchmark the segmentation ladder on colour photographs, and what colour is worth.

* ``ph2`` (``../shared/data/ph2_dermoscopy``, 40 RGB dermoscopy images of about 575 x 765, masks
  named ``IMDnnn_lesion.png``): the default ladder, 5-fold cross-validation (every rung judged
  on every case), ``--budget 20min``, on a working grid of spacing 3 (about 192 x 255: on 2 CPU
  cores full resolution leaves the deep rungs a few epochs). Goal: best rung Dice >= 0.90
  (published: 0.90 to 0.94).
* ``ph2_grey``: the same fit with ``colour: grey`` (each photograph reduced to luminance); the
  result records, per rung, the paired Dice gain of colour over grey on the same cases, with
  its 95% CI.
* ``kvasir`` (``../shared/data/kvasir_seg_256``, 100 RGB endoscopy images, JPEG masks): the
  default ladder, 5-fold cross-validation, ``--budget 20min``. Goal: best rung Dice >= 0.80.

Runs one after the other. Writes ``benchmarks/results/colour_segmentation.json``; absent datasets
are recorded as skipped.

Usage: .venv/bin/python benchmarks/colour_segmentation.py [--only ph2|ph2_grey|kvasir] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import automed
from automed.metrics import FOREGROUND, summarize
from _common import ROOT, run_and_record
from deep_segmentation import rung_summary

DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "benchmarks" / "results" / "colour_segmentation.json"
CASES = {"ph2": ("ph2_dermoscopy", "rgb", (3.0, 3.0), 0.90), "ph2_grey": ("ph2_dermoscopy", "grey", (3.0, 3.0), 0.90),
         "kvasir": ("kvasir_seg_256", "rgb", None, 0.80)}


def per_case_dice(folder: Path, rung: str) -> dict[str, float]:
    """Mean foreground Dice of each case the rung was judged on."""
    result = json.loads((folder / "rungs" / rung / "result.json").read_text())
    return {r["case_id"]: float(np.mean([s["dice"] for c, s in r["scores"].items() if c not in ("0", FOREGROUND)]))
            for r in result["per_case"]}


def colour_gain(colour_folder: Path, grey_folder: Path, rung: str) -> dict | None:
    """Paired Dice gain of colour over grey on the cases both fits judged, with a 95% bootstrap CI."""
    if not (colour_folder / "rungs" / rung / "result.json").is_file() or \
            not (grey_folder / "rungs" / rung / "result.json").is_file():
        return None
    colour, grey = per_case_dice(colour_folder, rung), per_case_dice(grey_folder, rung)
    shared = sorted(set(colour) & set(grey))
    if not shared:
        return None
    return summarize([colour[c] - grey[c] for c in shared])


def run_one(name: str, workdir: Path) -> dict:
    folder, colour, spacing, goal = CASES[name]
    data = DATA / folder
    if not data.is_dir():
        return {"dataset": name, "status": "skipped", "reason": f"{data} not found"}
    recipe = automed.Recipe(task="segmentation", budget_s=1200, cv="full", colour=colour, target_spacing=spacing)
    started = time.monotonic()
    run = automed.fit(recipe, data, workdir / name, overwrite=True, progress=False)
    wall = time.monotonic() - started
    rungs = {r["name"]: rung_summary(r) for r in run.report_["rungs"]}
    done = [r for r in rungs.values() if r["status"] == "done" and r["comparison_dice"] is not None]
    best = max(done, key=lambda r: r["comparison_dice"], default=None)
    result = {"dataset": name, "status": "done", "colour": colour, "target_spacing": spacing,
              "n_cases": run.report_["dataset"]["n_cases"],
              "budget_s": recipe.budget_s, "cv": recipe.cv, "wall_seconds": wall,
              "recommendation": run.report_["recommendation"]["sentence"], "rungs": rungs,
              "hardware": run.report_["hardware"],
              "goals_met": {f"best_dice_at_least_{goal}": best is not None and best["comparison_dice"] >= goal,
                            "within_budget_plus_5pct": wall <= recipe.budget_s * 1.05}}
    if name == "ph2_grey" and (workdir / "ph2").is_dir():
        result["colour_gain_over_grey"] = {rung: colour_gain(workdir / "ph2", workdir / name, rung) for rung in rungs}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(CASES))
    parser.add_argument("--keep", type=Path, help="Keep the run folders here (ph2_grey compares with ph2's there).")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    names = [args.only] if args.only else list(CASES)
    run_and_record(names, run_one, args.out, args.keep)


if __name__ == "__main__":
    main()
