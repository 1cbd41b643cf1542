"""Benchmark leave-one-site-out (``--cv by-site``) on a simulated second scanner, and whether the ``scanner``
augmentation lets the unseen-site figure rise.

No dataset in ``../shared/data`` lists its sites, so the second site is simulated: the 200 MSD hippocampus cases
are split by case number into site A (the first 100, as released) and site B (the other 100, their images changed
as another scanner would change them, seeded: MONAI's bias field with coefficients 0.05-0.1, intensities scaled by
0.9-2 over the volume; a gamma of 1.8-2.2 on the image scaled to [0, 1]; Gaussian noise of a tenth of its 1-99 %
range). The labels are unchanged.
Three fits, one after the other: ``classical,unet2d`` with the default augmentation search, with unet2d searching
``medium`` and ``scanner``, and with ``scanner`` alone; each with ``--cv by-site --budget 16min``.

Writes ``benchmarks/results/site_shift.json``; an absent dataset is recorded as skipped.

Usage: .venv/bin/python benchmarks/site_shift.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np

import automed
from _common import ROOT, run_and_record

DATA = ROOT.parent / "shared" / "data" / "hippocampus"
BUDGET = "16min"
AUGMENTATIONS = {"default_augmentation": (), "scanner_augmentation": ("medium", "scanner"),
                 "scanner_only": ("scanner",)}
"""The unet2d augmentation strengths each fit searches (none given: the rung's default search)."""
SEED = 0


def simulated_sites(out: Path) -> Path:
    """The hippocampus dataset with site B's images shifted (see the module docstring) and ``groups.csv``."""
    import SimpleITK as sitk
    import torch
    from monai.transforms import RandBiasField

    meta = json.loads((DATA / "dataset.json").read_text())
    shutil.rmtree(out, ignore_errors=True)
    (out / "imagesTr").mkdir(parents=True)
    shutil.copytree(DATA / "labelsTr", out / "labelsTr")
    training = sorted(meta["training"], key=lambda t: t["image"])
    bias = RandBiasField(coeff_range=(0.05, 0.1), prob=1.0)
    bias.set_random_state(SEED)
    rng = np.random.default_rng(SEED)
    rows = ["case,group,site"]
    for i, entry in enumerate(training):
        name = Path(entry["image"]).name
        site = "A" if i < len(training) // 2 else "B"
        rows.append(f"{name.removesuffix('.nii.gz')},{name.removesuffix('.nii.gz')},{site}")
        if site == "A":
            shutil.copy(DATA / "imagesTr" / name, out / "imagesTr" / name)
            continue
        image = sitk.ReadImage(str(DATA / "imagesTr" / name))
        array = sitk.GetArrayFromImage(image).astype(np.float32)
        low, high = float(array.min()), float(array.max())
        scaled = (array - low) / max(high - low, 1e-6)
        scaled = np.asarray(bias(torch.as_tensor(scaled[None]))[0]) ** rng.uniform(1.8, 2.2)
        spread = float(np.percentile(scaled, 99) - np.percentile(scaled, 1))
        shifted = low + (high - low) * (scaled + rng.normal(0, 0.1 * spread, scaled.shape))
        result = sitk.GetImageFromArray(shifted.astype(np.float32))
        result.CopyInformation(image)
        sitk.WriteImage(result, str(out / "imagesTr" / name))
    (out / "dataset.json").write_text(json.dumps({**meta, "training": training, "test": []}))
    (out / "groups.csv").write_text("\n".join(rows) + "\n")
    return out


def run_one(name: str, workdir: Path) -> dict:
    if not (DATA / "dataset.json").is_file():
        return {"dataset": name, "status": "skipped", "reason": f"{DATA} not found"}
    data = workdir / "hippocampus_two_sites"
    if not (data / "groups.csv").is_file():
        simulated_sites(data)
    unet2d = {"name": "unet2d", "params": {"augmentations": list(AUGMENTATIONS[name])}} if AUGMENTATIONS[name] else {
        "name": "unet2d"}
    recipe = automed.Recipe(task="segmentation", rungs=["classical", unet2d], cv="by-site", budget=BUDGET)
    started = time.monotonic()
    run = automed.fit(recipe, data, workdir / name, overwrite=True, progress=False)
    wall = time.monotonic() - started
    shift = json.loads((workdir / name / "site_shift.json").read_text())
    chosen = {r["name"]: (r.get("details") or {}).get("config", {}).get("augmentation")
              for r in run.report_["rungs"] if r["status"] == "done"}
    return {"dataset": "hippocampus, site B simulated", "status": "done", "budget": BUDGET, "wall_seconds": wall,
            "fit_seconds": run.report_["fit_seconds"], "augmentation_chosen": chosen, "site_shift": shift,
            "recommendation": run.report_["recommendation"]["sentence"], "hardware": run.report_["hardware"]}


def rescore(folder: Path) -> dict:
    """``site_shift.json`` of the finished run ``folder`` written again by the current code from its saved refits
    (nothing is refitted)."""
    from automed.cluster.storage import StudyStorage
    from automed.ladder.reopen import reopen_run
    from automed.ladder.site_shift import site_shift
    from automed.results import read_result

    run = reopen_run(folder)
    done = [r for r in (read_result(folder / "rungs" / s.name) for s in run.recipe.rungs
                        if (folder / "rungs" / s.name / "result.json").is_file()) if r.done]
    site_shift(folder, run.recipe, run.opened, done, 1, False, StudyStorage.resolve(None, folder, run.record.run_id))
    return json.loads((folder / "site_shift.json").read_text())


def unseen_versus_default(keep: Path, name: str) -> dict:
    """The paired difference, case by case over every case, of unet2d's unseen-site Dice (each case scored by the
    refit that never saw its site) in fit ``name`` against the default fit."""
    from automed.statistics import case_scores, paired_gain

    def unseen(run: str) -> dict[str, float]:
        scores: dict[str, float] = {}
        for result in sorted((keep / run / "rungs" / "unet2d" / "sites").glob("*/result.json")):
            scores.update(case_scores(json.loads(result.read_text())["per_case"], [1, 2]))
        return scores

    return paired_gain(unseen("default_augmentation"), unseen(name), SEED)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="Keep the data and run folders in this folder.")
    parser.add_argument("--only", nargs="+", choices=list(AUGMENTATIONS), help="Run these fits only.")
    parser.add_argument("--rescore", action="store_true",
                        help="Only write site_shift.json again from the runs kept in --keep (no refit).")
    args = parser.parse_args()
    out = ROOT / "benchmarks" / "results" / "site_shift.json"
    if args.rescore:
        results = json.loads(out.read_text())
        for name in results:
            results[name]["site_shift"] = rescore(args.keep / name)
        out.write_text(json.dumps(results, indent=2))
        compare_with_default(out, args.keep)
        return
    parser_names = args.only or list(AUGMENTATIONS)
    run_and_record(parser_names, run_one, out, keep=args.keep)
    if args.keep:
        compare_with_default(out, args.keep)


def compare_with_default(out: Path, keep: Path) -> None:
    """Add each non-default fit's unseen-site gain over the default fit (:func:`unseen_versus_default`) to ``out``."""
    results = json.loads(out.read_text())
    for name in results:
        if name != "default_augmentation" and (keep / name).is_dir() and (keep / "default_augmentation").is_dir():
            results[name]["unet2d_unseen_vs_default"] = unseen_versus_default(keep, name)
    out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
