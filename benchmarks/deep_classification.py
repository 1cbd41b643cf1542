"""Benchmark the classification ladder on MedMNIST (official test splits).

* ``breastmnist``: classical, cnn, ssl, inception_v3 (frozen ImageNet features; needs
  ``--pretrained-weights`` or a torch hub cache, else it is skipped with the reason) and the
  ensemble of those that finished, with ``--budget 30min`` and ``--label-fractions 0.1,0.25,1.0``. Goals: one rung with test AUC >= 0.91
  and accuracy >= 0.87; the learning curve of classical, cnn and ssl is in the report.
* ``adrenalmnist3d`` (28^3): classical, cnn and their ensemble with ``--budget 20min``. Goals: one rung with test
  AUC >= 0.86 and accuracy >= 0.82.

Writes ``benchmarks/results/deep_classification.json``; absent datasets are recorded as skipped.

Usage: .venv/bin/python benchmarks/deep_classification.py [--only NAME] [--weights inception_v3=FILE]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import automed
from _common import ROOT, run_and_record

MEDMNIST = ROOT.parent / "shared" / "data" / "medmnist"


def breast_recipe(weights: dict[str, str]) -> automed.Recipe:
    base = automed.Recipe.from_yaml(ROOT / "recipes" / "medmnist-2d-classification.yaml")
    transfer = {"name": "inception_v3", "params": {"weights": weights.get("inception_v3", "imagenet"),
                                                   "modes": ["frozen"]}}
    return base.replace(budget_s=1800, full_ladder=True, label_fractions=(0.1, 0.25, 1.0),
                        rungs=(base.rungs[0], "cnn", "ssl", transfer, "ensemble"))


def adrenal_recipe(weights: dict[str, str]) -> automed.Recipe:
    base = automed.Recipe.from_yaml(ROOT / "recipes" / "ct-3d-classification.yaml")
    return base.replace(budget_s=1200, full_ladder=True, rungs=(base.rungs[0], "cnn", "ensemble"))


CASES = {"breastmnist": ("breastmnist.npz", breast_recipe, (0.91, 0.87)),
         "adrenalmnist3d": ("adrenalmnist3d.npz", adrenal_recipe, (0.86, 0.82))}


def rung_summary(rung: dict) -> dict:
    """A classification rung's status, test scores with CIs, gains, cost and configuration."""
    test, details = rung.get("test") or {}, rung.get("details") or {}
    return {"status": rung["status"], "reason": rung.get("reason"),
            **{f"test_{k}": test.get(k) for k in ("auc", "accuracy", "balanced_accuracy", "qwk")},
            "gain_vs_baseline": rung.get("gain_vs_baseline"), "gain_vs_reference": rung.get("gain_vs_reference"),
            "cost": rung.get("cost"), "config": details.get("config") or details.get("model"),
            "initialisation": details.get("initialisation"), "n_models": details.get("n_models")}


def run_one(name: str, workdir: Path, weights: dict[str, str]) -> dict:
    file, make_recipe, (min_auc, min_accuracy) = CASES[name]
    data = MEDMNIST / file
    if not data.is_file():
        return {"dataset": name, "status": "skipped", "reason": f"{data} not found"}
    recipe = make_recipe(weights)
    started = time.monotonic()
    run = automed.fit(recipe, data, workdir / name, overwrite=True, progress=False)
    wall = time.monotonic() - started
    rungs = {rung["name"]: rung_summary(rung) for rung in run.report_["rungs"]}
    meeting = [name for name, r in rungs.items() if r["status"] == "done"
               and r["test_auc"]["mean"] >= min_auc and r["test_accuracy"]["mean"] >= min_accuracy]
    goals = {f"one_rung_with_auc_{min_auc}_and_accuracy_{min_accuracy}": bool(meeting),
             "within_budget_plus_5pct": wall <= recipe.budget_s * 1.05}
    curve = run.report_.get("learning_curve")
    if recipe.label_fractions:
        goals["learning_curve_reported"] = bool(curve) and {"classical", "cnn", "ssl"} <= set(curve["rungs"])
    return {"dataset": name, "status": "done", "wall_seconds": wall, "budget_s": recipe.budget_s,
            "recommendation": run.report_["recommendation"]["sentence"], "rungs": rungs, "learning_curve": curve,
            "goals_met": goals, "rungs_meeting_both_goals": meeting, "hardware": run.report_["hardware"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(CASES))
    parser.add_argument("--weights", action="append", default=[], help="RUNG=FILE state dict for a transfer rung.")
    parser.add_argument("--keep", type=Path, help="Keep the run folders here instead of a temporary folder.")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "deep_classification.json")
    args = parser.parse_args()
    weights = dict(item.split("=", 1) for item in args.weights)
    run_and_record([args.only] if args.only else list(CASES),
                   lambda name, workdir: run_one(name, workdir, weights), args.out, args.keep)


if __name__ == "__main__":
    main()
