"""Benchmark what the classical segmentation rung's default bound costs: with no ``--budget``, bounded by its own
``max_seconds`` (600 s, the default) against unbounded (``max_seconds: null``), one after the other on the same
30 hippocampus cases (the first 30 of ``dataset.json``, an MSD subset linked into a temporary folder), 5-fold CV.

For each: the rung's seconds, where they went, its out-of-fold Dice over the 30 cases with the 95% CI, and the
paired difference (bounded minus unbounded) over the same cases. Goal: the bound costs no Dice that its CI can
see, and saves time.

Second entry (``hippocampus10_budget4min``): ``--rungs classical,unet2d --budget 4min`` on the first 10 cases, the
case the issue saw overrun (the classical rung spent 259 s of the 240 s and unet2d was skipped). Goal: the classical
rung stays within 1.5x its allotment, unet2d fits, and the fit ends within +5% of the budget.

Writes ``benchmarks/results/classical_bound.json``; an absent dataset is recorded as skipped.

Usage: .venv/bin/python benchmarks/classical_bound.py [--only NAME]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import automed
from _common import ROOT, run_and_record

DATA = ROOT.parent / "shared" / "data" / "hippocampus"
N_CASES = 30
BUDGET_CASES, BUDGET_S = 10, 240.0


def subset(root: Path, n_cases: int) -> Path:
    """The first ``n_cases`` training cases of the hippocampus dataset as an MSD folder of links under ``root``."""
    meta = json.loads((DATA / "dataset.json").read_text())
    cases = meta["training"][:n_cases]
    out = root / f"hippocampus{n_cases}"
    for folder in ("imagesTr", "labelsTr"):
        (out / folder).mkdir(parents=True)
    for case in cases:
        for key in ("image", "label"):
            (out / case[key]).symlink_to((DATA / case[key]).resolve())
    (out / "dataset.json").write_text(json.dumps({**meta, "training": cases, "numTraining": len(cases),
                                                  "test": [], "numTest": 0}))
    return out


def run_one(name: str, workdir: Path) -> dict:
    if not (DATA / "dataset.json").is_file():
        return {"dataset": name, "status": "skipped", "reason": f"{DATA} not found"}
    return RUNS[name](name, workdir)


def under_budget(name: str, workdir: Path) -> dict:
    """Classical then unet2d under a 4-minute budget on the first 10 cases."""
    with tempfile.TemporaryDirectory() as tmp:
        data = subset(Path(tmp), BUDGET_CASES)
        recipe = automed.Recipe(task="segmentation", rungs=["classical", "unet2d"], budget_s=BUDGET_S)
        started = time.monotonic()
        run = automed.fit(recipe, data, workdir / name, overwrite=True, progress=False)
        wall = time.monotonic() - started
    rungs = {}
    for rung in run.report_["rungs"]:
        allotted, spent = rung["estimate"]["allotted_seconds"], rung["cost"]["fit_seconds"]
        rungs[rung["name"]] = {"status": rung["status"], "reason": rung.get("reason"), "allotted_s": allotted,
                               "estimate_s": rung["estimate"]["seconds"], "fit_s": spent,
                               "over_allotment": spent / allotted if allotted and spent else None,
                               "stage_seconds": (rung.get("details") or {}).get("stage_seconds"),
                               "dice": rung.get("metric")}
    fit_s = run.report_["fit_seconds"]
    return {"dataset": name, "status": "done", "n_cases": BUDGET_CASES, "budget_s": BUDGET_S, "wall_seconds": wall,
            "fit_seconds": fit_s, "rungs": rungs, "recommendation": run.report_["recommendation"]["sentence"],
            "hardware": run.report_["hardware"],
            "goals_met": {"fit_within_5pct": fit_s <= 1.05 * BUDGET_S,
                          "unet2d_fitted": rungs.get("unet2d", {}).get("status") == "done",
                          "rungs_within_1.5x": all(r["over_allotment"] is None or r["over_allotment"] <= 1.5
                                                   for r in rungs.values())}}


def bound_against_none(name: str, workdir: Path) -> dict:
    """The classical rung alone with no budget, bounded by its 600 s default and unbounded, on 30 cases."""
    with tempfile.TemporaryDirectory() as tmp:
        data = subset(Path(tmp), N_CASES)
        runs = {}
        for label, bound in (("unbounded", None), ("bounded_600s", 600.0)):
            recipe = automed.Recipe(task="segmentation", rungs=[{"name": "classical",
                                                                 "params": {"max_seconds": bound}}])
            started = time.monotonic()
            runs[label] = (automed.fit(recipe, data, workdir / label, overwrite=True, progress=False),
                           time.monotonic() - started)
    summary = {}
    scores = {}
    for label, (run, wall) in runs.items():
        (rung,) = run.report_["rungs"]
        scores[label] = {c["case_id"]: c for c in rung["per_case"]}
        summary[label] = {"wall_seconds": wall, "fit_seconds": rung["cost"]["fit_seconds"],
                          "stage_seconds": rung["details"].get("stage_seconds"), "dice": rung["metric"],
                          "search": {k: rung["details"]["search"].get(k) for k in ("n_trials", "timeout_s")},
                          "allotted_seconds": rung["estimate"]["allotted_seconds"], "shrunk": rung["shrunk"]}
    from automed.statistics import case_scores, paired_gain

    classes = [1, 2]
    gain = paired_gain(case_scores(list(scores["unbounded"].values()), classes),
                       case_scores(list(scores["bounded_600s"].values()), classes), 0)
    saved = summary["unbounded"]["fit_seconds"] - summary["bounded_600s"]["fit_seconds"]
    return {"dataset": name, "status": "done", "n_cases": N_CASES, "runs": summary,
            "bounded_minus_unbounded_dice": gain, "seconds_saved": saved,
            "hardware": runs["bounded_600s"][0].report_["hardware"],
            "goals_met": {"no_visible_dice_loss": gain is not None and gain["ci_high"] >= 0,
                          "saves_time": saved > 0}}


RUNS = {"hippocampus30": bound_against_none, "hippocampus10_budget4min": under_budget}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(RUNS))
    args = parser.parse_args()
    names = [args.only] if args.only else list(RUNS)
    run_and_record(names, run_one, ROOT / "benchmarks" / "results" / "classical_bound.json")


if __name__ == "__main__":
    main()
