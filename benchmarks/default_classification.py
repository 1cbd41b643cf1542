"""Benchmark the default classification ladder under ``--budget 15min``, as a new user runs it.

``automed fit --task classification DATA --budget 15min`` with no recipe and no ``--rungs``, on
BreastMNIST (28x28 grey), AdrenalMNIST3D (28^3) and the PH2 diagnosis manifest (RGB photographs with
lesion masks). For every rung: its allotment, its estimate and the seconds it took, the test AUC and
accuracy with 95% CIs, and the recommendation. Goals: the fit within +5 % of its budget, no rung past
1.5x its allotment, every rung run or skipped with a reason, and on BreastMNIST one rung at test AUC
>= 0.91. Transfer rungs need ImageNet weights (a torch hub cache): offline they are skipped, and say so.

Writes ``benchmarks/results/default_classification.json``; absent datasets are recorded as skipped.

Usage: .venv/bin/python benchmarks/default_classification.py [--only NAME] [--keep DIR]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import automed
from _common import ROOT, run_and_record

DATA = ROOT.parent / "shared" / "data"
CASES = {"breastmnist": (DATA / "medmnist" / "breastmnist.npz", 0.91),
         "adrenalmnist3d": (DATA / "medmnist" / "adrenalmnist3d.npz", None),
         "ph2_diagnosis": (DATA / "ph2_dermoscopy" / "diagnosis.csv", None)}
BUDGET_S = 900


def rung_row(rung: dict) -> dict:
    """What the rung was allotted, estimated and spent, and its test scores. An ensemble's cost is its members'
    (it needs them all to predict): what it spent of its own allotment is its ``own_seconds``."""
    estimate, cost, test = rung.get("estimate") or {}, rung.get("cost") or {}, rung.get("test") or {}
    details = rung.get("details") or {}
    allotted, spent = estimate.get("allotted_seconds"), details.get("own_seconds", cost.get("fit_seconds"))
    return {"status": rung["status"], "reason": rung.get("reason"), "allotted_s": allotted,
            "estimate_s": estimate.get("seconds"), "estimate_note": estimate.get("note"), "fit_s": spent,
            "over_allotment": None if None in (allotted, spent) or not allotted else spent / allotted,
            "test_auc": test.get("auc"), "test_accuracy": test.get("accuracy"),
            "stage_seconds": details.get("stage_seconds"), "library_warnings": details.get("library_warnings")}


def run_one(name: str, workdir: Path) -> dict:
    data, min_auc = CASES[name]
    if not data.is_file():
        return {"dataset": name, "status": "skipped", "reason": f"{data} not found"}
    recipe = automed.Recipe(task="classification", budget_s=BUDGET_S)
    started = time.monotonic()
    run = automed.fit(recipe, data, workdir / name, overwrite=True, progress=False)
    wall = time.monotonic() - started
    rungs = {rung["name"]: rung_row(rung) for rung in run.report_["rungs"]}
    done = {n: r for n, r in rungs.items() if r["status"] == "done"}
    goals = {"within_budget_plus_5pct": wall <= BUDGET_S * 1.05,
             "no_rung_past_1.5x_its_allotment": all((r["over_allotment"] or 0) <= 1.5 for r in done.values()),
             "every_rung_run_or_skipped_with_reason": all(r["status"] == "done" or r["reason"]
                                                          for r in rungs.values())}
    if min_auc is not None:
        goals[f"one_rung_with_test_auc_{min_auc}"] = any(r["test_auc"]["mean"] >= min_auc for r in done.values())
    return {"dataset": name, "status": "done", "budget_s": BUDGET_S, "wall_seconds": wall,
            "ladder": [r["name"] for r in run.report_["rungs"]], "rungs": rungs,
            "recommendation": run.report_["recommendation"]["sentence"], "stopped_early": run.report_["stopped_early"],
            "hardware": run.report_["hardware"], "goals_met": goals}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(CASES))
    parser.add_argument("--keep", type=Path, help="Keep the run folders here instead of a temporary folder.")
    args = parser.parse_args()
    names = [args.only] if args.only else list(CASES)
    run_and_record(names, run_one, ROOT / "benchmarks" / "results" / "default_classification.json", args.keep)


if __name__ == "__main__":
    main()
