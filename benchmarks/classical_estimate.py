"""Benchmark the classical classification rung's estimate against the seconds it takes.

The rung alone with its default parameters and no budget (its own 600 s bound), on a new run folder
each time (no feature cache): BreastMNIST (780 grey 28x28 images), AdrenalMNIST3D (1,584 grey 28^3
volumes) and the PH2 diagnosis manifest (40 RGB photographs with lesion masks). For each: the
estimate, the measured seconds and their ratio, where the time went, the test AUC with its CI and the
library warnings. Goal: every ratio within a factor of 1.5.

Writes ``benchmarks/results/classical_estimate.json``; absent datasets are recorded as skipped.

Usage: .venv/bin/python benchmarks/classical_estimate.py [--only NAME]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import automed
from _common import ROOT, run_and_record
from default_classification import CASES


def run_one(name: str, workdir: Path) -> dict:
    data = CASES[name][0]
    if not data.is_file():
        return {"dataset": name, "status": "skipped", "reason": f"{data} not found"}
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
    parser.add_argument("--only", choices=sorted(CASES))
    args = parser.parse_args()
    names = [args.only] if args.only else list(CASES)
    run_and_record(names, run_one, ROOT / "benchmarks" / "results" / "classical_estimate.json")


if __name__ == "__main__":
    main()
