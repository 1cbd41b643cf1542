"""Benchmark the classical rung on real data: Dice per class, wall seconds, peak RSS.

Runs ``automed.fit`` with the shipped recipes on ``../shared/data/hippocampus`` (3D MRI,
200 cases, 5-fold CV) and ``../shared/data/isbi2012_em`` (2D EM, 30 images, 5-fold CV), and
the classical rung's default parameters on the hippocampus with ``--budget 6min``
(``hippocampus_defaults``), and writes ``benchmarks/results/classical_segmentation.json``.
Datasets that are absent are skipped and recorded as such.

Usage: .venv/bin/python benchmarks/classical_segmentation.py [--only hippocampus|hippocampus_defaults|isbi2012_em]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import automed
from _common import ROOT, run_and_record, timed_fit

DATA = ROOT.parent / "shared" / "data"
GOALS_3D = {"max_fit_seconds": 360, "max_peak_rss_bytes": 6e9, "min_mean_dice": 0.85}
#: name: (dataset folder, recipe file or recipe, goals)
CASES = {
    "hippocampus": ("hippocampus", "mri-3d.yaml", GOALS_3D),
    "hippocampus_defaults": ("hippocampus", automed.Recipe(task="segmentation", budget_s=360,
                                                           rungs=[{"name": "classical"}]), GOALS_3D),
    "isbi2012_em": ("isbi2012_em", "microscopy-2d.yaml", {}),
}


def run_one(name: str, dataset: str, recipe_file: str | automed.Recipe, goals: dict, workdir: Path) -> dict:
    data = DATA / dataset
    if not data.is_dir():
        return {"dataset": dataset, "status": "skipped", "reason": f"{data} not found"}
    run, recipe, wall = timed_fit(data, recipe_file, workdir / name)
    rung = run.report_["rungs"][0]
    result = {
        "dataset": dataset, "status": "done",
        "recipe": recipe_file if isinstance(recipe_file, str) else f"defaults, budget {recipe.budget_s:g} s",
        "search": rung["details"]["search"], "n_cases": run.report_["dataset"]["n_cases"],
        "n_folds": recipe.n_folds, "mean_dice": rung["metric"]["mean"],
        "mean_dice_ci": [rung["metric"]["ci_low"], rung["metric"]["ci_high"]],
        "per_class_dice": {k: v["dice_mean"] for k, v in rung["per_class"].items()},
        "per_class_hd95": {k: v["hd95_mean"] for k, v in rung["per_class"].items()},
        "wall_seconds": wall, "rung_fit_seconds": rung["cost"]["fit_seconds"],
        "peak_rss_bytes": rung["cost"]["peak_rss_bytes"],
        "predict_seconds_per_case": rung["cost"]["predict_seconds_per_case"],
        "model": rung["details"]["model"], "background_weight": rung["details"]["background_weight"],
        "auto_context": rung["details"].get("auto_context"),
        "dice_before_postprocessing": rung["details"].get("dice_before_postprocessing"),
        "postprocessing": rung["postprocessing"], "hardware": run.report_["hardware"],
    }
    checks = {}
    if "max_fit_seconds" in goals:
        checks[f"fit_within_{goals['max_fit_seconds'] / 60:g}_min"] = wall <= goals["max_fit_seconds"]
    if "max_peak_rss_bytes" in goals:
        checks["peak_rss_within_6_gb"] = rung["cost"]["peak_rss_bytes"] <= goals["max_peak_rss_bytes"]
    if "min_mean_dice" in goals:
        checks[f"mean_dice_at_least_{goals['min_mean_dice']}"] = rung["metric"]["mean"] >= goals["min_mean_dice"]
    result["goals_met"] = checks
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(CASES))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "classical_segmentation.json")
    args = parser.parse_args()
    names = [args.only] if args.only else list(CASES)
    run_and_record(names, lambda name, workdir: run_one(name, *CASES[name], workdir), args.out)


if __name__ == "__main__":
    main()
