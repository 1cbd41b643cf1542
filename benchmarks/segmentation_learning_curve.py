"""Benchmark the segmentation learning curve on the 200 MSD hippocampus cases: ``--rungs classical,unet2d
--label-fractions 0.1,0.25,0.5,1.0 --budget 24min``. Each finished rung is refitted on nested subsets of fold 0's
160 training cases and scored on fold 0's 40 validation cases; the fitted power law estimates what doubling the
labels would gain, beside what unet2d gained over classical: "more labels or a bigger model?".

Writes ``benchmarks/results/segmentation_learning_curve.json``; an absent dataset is recorded as skipped.

Usage: .venv/bin/python benchmarks/segmentation_learning_curve.py
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import automed
from _common import ROOT, run_and_record

DATA = ROOT.parent / "shared" / "data" / "hippocampus"
FRACTIONS = (0.1, 0.25, 0.5, 1.0)
BUDGET = "24min"


def run_one(name: str, workdir: Path) -> dict:
    if not (DATA / "dataset.json").is_file():
        return {"dataset": name, "status": "skipped", "reason": f"{DATA} not found"}
    recipe = automed.Recipe(task="segmentation", rungs=["classical", "unet2d"], label_fractions=FRACTIONS,
                            budget=BUDGET)
    started = time.monotonic()
    run = automed.fit(recipe, DATA, workdir / name, overwrite=True, progress=False)
    wall = time.monotonic() - started
    curve = json.loads((workdir / name / "learning_curve.json").read_text())
    gains = {r["name"]: r.get("gain_vs_prev") for r in run.report_["rungs"] if r["status"] == "done"}
    return {"dataset": name, "status": "done", "budget": BUDGET, "wall_seconds": wall,
            "fit_seconds": run.report_["fit_seconds"], "cases": curve["cases"], "curve": curve["rungs"],
            "doubling": curve["doubling"], "gain_vs_prev": gains,
            "recommendation": run.report_["recommendation"]["sentence"], "hardware": run.report_["hardware"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="Keep the run folder in this folder.")
    args = parser.parse_args()
    run_and_record(["hippocampus"], run_one, ROOT / "benchmarks" / "results" / "segmentation_learning_curve.json",
                   keep=args.keep)


if __name__ == "__main__":
    main()
