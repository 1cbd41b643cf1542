"""Benchmark multi-modal MRI segmentation: BraTS 2015, two channels in the nnU-Net layout.

* ``brats`` (``../shared/data/brats2015_2ch``: 6 cases, FLAIR and T1c as ``CASE_0000`` and
  ``CASE_0001``, 240 x 240 x 155, labels 0 to 4): the default ladder with ``--budget 30min`` and
  3-fold cross-validation (6 cases). Goals: the fit runs end to end, its peak RSS stays within
  24 GB, and the report gives the whole tumour (labels 1 to 4 as one region) and every label's
  Dice.

Writes ``benchmarks/results/multimodal_segmentation.json``; an absent dataset is recorded as skipped.

Usage: .venv/bin/python benchmarks/multimodal_segmentation.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import automed
from _common import ROOT, run_and_record
from deep_segmentation import rung_summary

DATA = ROOT.parent / "shared" / "data" / "brats2015_2ch"
MEMORY_LIMIT = 24 * 2**30
WHOLE_TUMOUR = "all foreground (union)"  # the report's name for labels 1 to 4 as one region


def run_one(name: str, workdir: Path) -> dict:
    if not DATA.is_dir():
        return {"dataset": name, "status": "skipped", "reason": f"{DATA} not found"}
    recipe = automed.Recipe(task="segmentation", budget_s=1800, n_folds=3)
    started = time.monotonic()
    run = automed.fit(recipe, DATA, workdir / name, overwrite=True, progress=False)
    wall = time.monotonic() - started
    rungs = {r["name"]: rung_summary(r) for r in run.report_["rungs"]}
    done = [r for r in rungs.values() if r["status"] == "done"]
    peak = max((r["peak_rss_bytes"] or 0 for r in rungs.values()), default=0)  # with the worker processes
    return {"dataset": name, "status": "done", "budget_s": recipe.budget_s, "wall_seconds": wall,
            "n_cases": run.report_["dataset"]["n_cases"], "channels": run.report_["dataset"]["channel_names"],
            "peak_rss_bytes": peak, "recommendation": run.report_["recommendation"]["sentence"],
            "rungs": rungs, "hardware": run.report_["hardware"],
            "goals_met": {"end_to_end": bool(done), "peak_rss_within_24_gb": peak <= MEMORY_LIMIT,
                          "whole_tumour_and_every_label_reported": bool(done) and all(
                              WHOLE_TUMOUR in r["per_class_dice"] and len(r["per_class_dice"]) >= 5 for r in done),
                          "within_budget_plus_5pct": wall <= recipe.budget_s * 1.05}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="Keep the run folder here instead of a temporary folder.")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "multimodal_segmentation.json")
    args = parser.parse_args()
    run_and_record(["brats"], run_one, args.out, args.keep)


if __name__ == "__main__":
    main()
