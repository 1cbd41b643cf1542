"""Benchmark what the classical segmentation rung's default bound costs: with no ``--budget``, bounded by its own
``max_seconds`` (600 s, the default) against unbounded (``max_seconds: null``), one after the other on the same
30 hippocampus cases (the first 30 of ``dataset.json``, an MSD subset linked into a temporary folder), 5-fold CV.

For each: the rung's seconds, where they went, its out-of-fold Dice over the 30 cases with the 95% CI, and the
paired difference (bounded minus unbounded) over the same cases. Goal: the bound costs no Dice that its CI can
see, and saves time.

Writes ``benchmarks/results/classical_bound.json``; an absent dataset is recorded as skipped.

Usage: .venv/bin/python benchmarks/classical_bound.py
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


def subset(root: Path) -> Path:
    """The first ``N_CASES`` training cases of the hippocampus dataset as an MSD folder of links under ``root``."""
    meta = json.loads((DATA / "dataset.json").read_text())
    cases = meta["training"][:N_CASES]
    out = root / "hippocampus30"
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
    with tempfile.TemporaryDirectory() as tmp:
        data = subset(Path(tmp))
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


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    run_and_record(["hippocampus30"], run_one, ROOT / "benchmarks" / "results" / "classical_bound.json")


if __name__ == "__main__":
    main()
