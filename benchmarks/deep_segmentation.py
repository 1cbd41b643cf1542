"""Benchmark the segmentation ladder on real data: every rung's Dice, gains and cost under a budget.

* ``hippocampus`` (``../shared/data/hippocampus``, 200 3D MRI cases): the default ladder
  (classical, unet2d, unetpp, unet3d) with ``--budget 60min``. Goals: every rung appears
  in the report (run or skipped with a reason), the best deep rung reaches mean Dice >= 0.88
  on the comparison cases (fold 0's validation cases), the fit stays within the budget
  (+5% for reporting).
* ``isbi2012_em`` (``../shared/data/isbi2012_em``, 30 2D EM images): the microscopy recipe's
  classical rung, then ``unet2d``, with ``--budget 20min``. Goal: ``unet2d`` beats the
  classical rung (the paired gain's 95% CI lies above 0).

Writes ``benchmarks/results/deep_segmentation.json``; absent datasets are recorded as skipped.

Usage: .venv/bin/python benchmarks/deep_segmentation.py [--only hippocampus|isbi2012_em] [--keep DIR]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import automed
from _common import ROOT, run_and_record

DATA = ROOT.parent / "shared" / "data"


def hippocampus_recipe() -> automed.Recipe:
    return automed.Recipe(task="segmentation", budget_s=3600)


def isbi_recipe() -> automed.Recipe:
    base = automed.Recipe.from_yaml(ROOT / "recipes" / "microscopy-2d.yaml")
    return base.replace(budget_s=1200, rungs=(base.rungs[0], "unet2d"))


CASES = {"hippocampus": hippocampus_recipe, "isbi2012_em": isbi_recipe}


def rung_summary(rung: dict) -> dict:
    cost = rung.get("cost") or {}
    comparison = (rung.get("comparison") or {}).get("metric") or {}
    return {
        "status": rung["status"], "reason": rung.get("reason"), "shrunk": rung.get("shrunk"),
        "comparison_dice": comparison.get("mean"), "comparison_ci": [comparison.get("ci_low"), comparison.get("ci_high")],
        "comparison_n": comparison.get("n"),
        "per_class_dice": {k: v["dice_mean"] for k, v in (rung.get("per_class") or {}).items()},
        "gain_vs_baseline": rung.get("gain_vs_baseline"), "gain_vs_prev": rung.get("gain_vs_prev"),
        "estimate": rung.get("estimate"),
        **{k: cost.get(k) for k in ("fit_seconds", "search_seconds", "final_fit_seconds", "core_hours", "gpu_hours",
                                    "n_trials", "n_trials_pruned", "n_params", "peak_rss_bytes", "peak_vram_bytes",
                                    "est_train_vram_bytes", "predict_seconds_per_case", "device")},
        "config": (rung.get("details") or {}).get("config"),
        "throughput": (rung.get("details") or {}).get("throughput"),
        "trainings": [{k: v for k, v in t.items() if k != "history"}
                      for t in (rung.get("details") or {}).get("trainings", [])],
    }


def run_one(name: str, workdir: Path) -> dict:
    data = DATA / name
    if not data.is_dir():
        return {"dataset": name, "status": "skipped", "reason": f"{data} not found"}
    recipe = CASES[name]()
    started = time.monotonic()
    run = automed.fit(recipe, data, workdir / name, overwrite=True, progress=False)
    wall = time.monotonic() - started
    rungs = {r["name"]: rung_summary(r) for r in run.report_["rungs"]}
    deep = [r for n, r in rungs.items() if n != "classical" and r["status"] == "done"]
    best_deep = max(deep, key=lambda r: r["comparison_dice"], default=None)
    result = {"dataset": name, "status": "done", "budget_s": recipe.budget_s, "wall_seconds": wall,
              "recommendation": run.report_["recommendation"]["sentence"], "stopped_early": run.report_.get("stopped_early"),
              "rungs": rungs, "hardware": run.report_["hardware"]}
    goals = {"within_budget_plus_5pct": wall <= recipe.budget_s * 1.05,
             "every_rung_reported": all(r["status"] in ("done", "skipped") and (r["status"] == "done" or r["reason"])
                                        for r in rungs.values())}
    if name == "hippocampus":
        goals["best_deep_dice_at_least_0.88"] = best_deep is not None and best_deep["comparison_dice"] >= 0.88
    else:
        gain = rungs["unet2d"]["gain_vs_baseline"]
        goals["unet2d_beats_classical"] = gain is not None and gain["ci_low"] is not None and gain["ci_low"] > 0
    result["goals_met"] = goals
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(CASES))
    parser.add_argument("--keep", type=Path, help="Keep the run folders here instead of a temporary folder.")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "deep_segmentation.json")
    args = parser.parse_args()
    names = [args.only] if args.only else list(CASES)
    run_and_record(names, run_one, args.out, args.keep)


if __name__ == "__main__":
    main()
