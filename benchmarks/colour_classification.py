"""Benchmark colour classification: PH2 dermoscopy diagnosis with the lesion masks as ROI.

* ``ph2_diagnosis`` (``../shared/data/ph2_dermoscopy/diagnosis.csv``: 40 RGB images, 3 classes,
  ``image,label,mask``): classical, cnn (and inception_v3 when ``--weights`` gives ImageNet
  weights; skipped with its reason otherwise) and their ensemble, ``--budget 10min``; the classes
  as ordered grades (common nevus < atypical nevus < melanoma), so ordinal models are searched
  against plain multi-class and quadratic-weighted kappa is reported. Goal: the fit runs end to
  end and every rung that ran reports test AUC with its 95% CI.

Writes ``benchmarks/results/colour_classification.json``; an absent dataset is recorded as skipped.

Usage: .venv/bin/python benchmarks/colour_classification.py [--keep DIR] [--weights FILE]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import automed
from _common import ROOT, run_and_record
from deep_classification import rung_summary

DATA = ROOT.parent / "shared" / "data" / "ph2_dermoscopy" / "diagnosis.csv"
GRADES = ["common_nevus", "atypical_nevus", "melanoma"]


def run_one(name: str, workdir: Path, weights: str | None = None) -> dict:
    if not DATA.is_file():
        return {"dataset": name, "status": "skipped", "reason": f"{DATA} not found"}
    transfer = {"name": "inception_v3", "params": {"weights": weights or "imagenet", "modes": ["frozen"]}}
    recipe = automed.Recipe(task="classification", budget_s=600, full_ladder=True, ordinal=True,
                            class_order=GRADES, rungs=("classical", "cnn", transfer, "ensemble"))
    started = time.monotonic()
    run = automed.fit(recipe, DATA, workdir / name, overwrite=True, progress=False)
    wall = time.monotonic() - started
    rungs = {rung["name"]: rung_summary(rung) for rung in run.report_["rungs"]}
    done = [r for r in rungs.values() if r["status"] == "done"]
    return {"dataset": name, "status": "done", "budget_s": recipe.budget_s, "wall_seconds": wall,
            "n_cases": run.report_["dataset"]["n_cases"], "n_channels": run.report_["dataset"]["n_channels"],
            "recommendation": run.report_["recommendation"]["sentence"], "rungs": rungs,
            "hardware": run.report_["hardware"],
            "goals_met": {"end_to_end": bool(done),
                          "every_run_rung_has_auc_ci": all(r["test_auc"] and r["test_auc"]["ci_low"] is not None
                                                           for r in done),
                          "within_budget_plus_5pct": wall <= recipe.budget_s * 1.05}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="Keep the run folder here instead of a temporary folder.")
    parser.add_argument("--weights", help="Inception-v3 ImageNet state dict for the transfer rung.")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "colour_classification.json")
    args = parser.parse_args()
    run_and_record(["ph2_diagnosis"], lambda name, workdir: run_one(name, workdir, args.weights), args.out, args.keep)


if __name__ == "__main__":
    main()
