"""Benchmark several annotators on BU-BIL cells (35 phase-contrast images, five experts each outlining every cell
twice, with two tools: ten masks per image).

- ``bubil_staple``: ``--rungs classical,unet2d --budget 8min`` trained on the STAPLE consensus of the ten masks;
  the inter-rater Dice (the human ceiling; the dataset's README gives 0.859), each rung against each rater and
  against the consensus, on the rungs' out-of-fold cases.
- ``bubil_one_rater``: the same fit trained on one expert's masks (``experts_amira/person1``), scored against the
  other experts (person2..5, both tools): what one annotator's labels cost against several.

``gold/`` is left out: its masks are person 2's (see the dataset's README). Writes
``benchmarks/results/multi_rater.json``; an absent dataset is recorded as skipped.

Usage: .venv/bin/python benchmarks/multi_rater.py [--only NAME]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import automed
from _common import ROOT, run_and_record

DATA = ROOT.parent / "shared" / "data" / "bubil_cells"
RATERS = ("experts_amira/person*", "experts_imagej/person*")
ONE_RATER = "experts_amira/person1"
BUDGET = "8min"


def run_one(name: str, workdir: Path) -> dict:
    if not DATA.is_dir():
        return {"dataset": name, "status": "skipped", "reason": f"{DATA} not found"}
    consensus = "staple" if name == "bubil_staple" else f"rater:{ONE_RATER}"
    recipe = automed.Recipe(task="segmentation", rungs=["classical", "unet2d"], raters=RATERS, consensus=consensus,
                            budget=BUDGET)
    started = time.monotonic()
    run = automed.fit(recipe, DATA, workdir / name, overwrite=True, progress=False)
    wall = time.monotonic() - started
    record = json.loads((workdir / name / "raters.json").read_text())
    person = ONE_RATER.rsplit("/", 1)[1]
    others = [r for r in record["raters"] if not r.endswith("/" + person)]
    rungs = {}
    for rung, row in record["rungs"].items():
        versus_others = [row["vs_rater"][r]["mean"] for r in others]
        rungs[rung] = {"vs_consensus": row["vs_consensus"], "vs_rater": row["vs_rater"], "n_cases": row["n_cases"],
                       f"mean_vs_raters_other_than_{person}": sum(versus_others) / len(versus_others)}
    return {"dataset": name, "status": "done", "consensus": consensus, "budget": BUDGET, "wall_seconds": wall,
            "fit_seconds": run.report_["fit_seconds"], "raters": record["raters"],
            "inter_rater_dice": record["inter_rater"]["metric"], "rater_vs_others": record["rater_vs_others"],
            "disagreeing_cases": record["disagreeing_cases"], "rungs": rungs,
            "recommendation": run.report_["recommendation"]["sentence"], "hardware": run.report_["hardware"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["bubil_staple", "bubil_one_rater"])
    parser.add_argument("--keep", type=Path, help="Keep the run folders in this folder.")
    args = parser.parse_args()
    names = [args.only] if args.only else ["bubil_staple", "bubil_one_rater"]
    run_and_record(names, run_one, ROOT / "benchmarks" / "results" / "multi_rater.json", keep=args.keep)


if __name__ == "__main__":
    main()
