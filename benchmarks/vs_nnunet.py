"""Benchmark automed against nnU-Net v2 side by side: Dice at equal wall time, same cases, one scorer.

* **nnU-Net** (``nnunetv2``, pinned below) is installed into its own virtual environment
  (``benchmarks/.nnunet-venv``, created when missing; it is not a dependency of automed), the
  shared hippocampus cases are converted to its raw layout, and ``splits_final.json`` is
  written as nnU-Net writes it (5-fold ``KFold``, ``random_state=12345``, sorted case ids).
  Each configuration (``2d``, ``3d_fullres``) trains fold 0 with ``-device cpu`` for the
  longest time asked; its ``checkpoint_best.pth`` is snapshotted at every time asked
  (15, 30, 60 minutes), and each snapshot predicts fold 0's validation cases.
* **automed** fits with ``--budget T --folds-file splits_final.json`` for every time T asked (a
  budget is planned up front, so each time is its own fit), and its recommended rung predicts
  the same cases.
* One scorer (:func:`automed.metrics.segmentation_scores`: per-class Dice and HD95) scores both
  prediction folders against the labels.

Jobs run one after the other, never at the same time; the machine's load average is sampled
every 30 s during each. Results merge into ``benchmarks/results/vs_nnunet.json`` per job, so the
tools and times can run in separate sessions.

Usage: .venv/bin/python benchmarks/vs_nnunet.py [--tools automed,nnunet_2d,nnunet_3d_fullres]
       [--minutes 15,30,60] [--cases N] [--work DIR] [--rungs unet3d] [--recipe FILE] [--tag SUFFIX]
       .venv/bin/python benchmarks/vs_nnunet.py --paired BASE:NEW[,BASE:NEW...]  (no fitting: the paired
       mean-Dice gain of stored result NEW over BASE on their shared cases, 95% bootstrap CI)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from _common import ROOT

DATA = ROOT.parent / "shared" / "data" / "hippocampus"
OUT = ROOT / "benchmarks" / "results" / "vs_nnunet.json"
VENV = ROOT / "benchmarks" / ".nnunet-venv"
NNUNET = "nnunetv2==2.8.1"
TORCH_PAIR = ("torch==2.14.1", "torchvision==0.29.1")
DATASET = "Dataset004_Hippocampus"
LABELS = {"background": 0, "Anterior": 1, "Posterior": 2}


class LoadSampler:
    """The 1-minute load average, sampled every ``period`` seconds while a job runs."""

    def __init__(self, period: float = 30.0) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(period,), daemon=True)

    def _run(self, period: float) -> None:
        while not self._stop.wait(period):
            self.samples.append(os.getloadavg()[0])

    def __enter__(self) -> LoadSampler:
        self.samples.append(os.getloadavg()[0])
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict:
        return {"mean": float(np.mean(self.samples)), "max": float(np.max(self.samples)), "n_samples": len(self.samples),
                "n_cores": os.cpu_count()}


def nnunet_env(work: Path) -> dict:
    """The environment nnU-Net's commands run in (its folders; data augmentation workers 1 on 2 cores)."""
    env = {**os.environ, "nnUNet_raw": str(work / "nnUNet_raw"), "nnUNet_preprocessed": str(work / "nnUNet_preprocessed"),
           "nnUNet_results": str(work / "nnUNet_results"), "nnUNet_n_proc_DA": str(max(1, (os.cpu_count() or 2) - 1))}
    env.pop("PYTHONPATH", None)
    return env


def install_nnunet() -> Path:
    """``benchmarks/.nnunet-venv`` with the CPU torch pair and nnU-Net; its ``bin`` folder."""
    bin_dir = VENV / "bin"
    if not (bin_dir / "nnUNetv2_train").is_file():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        pip = [str(bin_dir / "pip"), "install", "--quiet"]
        subprocess.run(pip + list(TORCH_PAIR), check=True)
        subprocess.run(pip + [NNUNET], check=True)
    return bin_dir


def convert(work: Path, case_ids: list[str]) -> Path:
    """nnU-Net's raw layout of ``case_ids`` (symbolic links to the shared files)."""
    raw = work / "nnUNet_raw" / DATASET
    for sub in ("imagesTr", "labelsTr"):
        (raw / sub).mkdir(parents=True, exist_ok=True)
    for case in case_ids:
        for src, dst in ((DATA / "imagesTr" / f"{case}.nii.gz", raw / "imagesTr" / f"{case}_0000.nii.gz"),
                         (DATA / "labelsTr" / f"{case}.nii.gz", raw / "labelsTr" / f"{case}.nii.gz")):
            if not dst.exists():
                dst.symlink_to(src)
    (raw / "dataset.json").write_text(json.dumps({"channel_names": {"0": "MRI"}, "labels": LABELS,
                                                  "numTraining": len(case_ids), "file_ending": ".nii.gz"}, indent=2))
    return raw


def nnunet_folds(case_ids: list[str]) -> list[dict]:
    """nnU-Net's default folds: ``KFold(5, shuffle=True, random_state=12345)`` over sorted ids."""
    from sklearn.model_selection import KFold

    ids = np.array(sorted(case_ids))
    return [{"train": ids[tr].tolist(), "val": ids[va].tolist()}
            for tr, va in KFold(n_splits=5, shuffle=True, random_state=12345).split(ids)]


def score(pred_folder: Path, case_ids: list[str]) -> dict:
    """Per-class Dice and HD95 of ``pred_folder``'s masks against the labels (one scorer for both tools)."""
    from automed.data.io import read_image
    from automed.metrics import segmentation_scores, summarize

    per_case = {}
    for case in case_ids:
        truth = read_image(DATA / "labelsTr" / f"{case}.nii.gz")
        pred = read_image(pred_folder / f"{case}.nii.gz").array
        scores = segmentation_scores(pred.astype(np.uint8), truth.array.astype(np.uint8), 3,
                                     truth.geometry.spacing[::-1])
        per_case[case] = {str(c): scores[c] for c in (1, 2)}
    out = {"n": len(per_case), "per_case": per_case}
    for c in ("1", "2"):
        out[f"dice_{c}"] = summarize([s[c]["dice"] for s in per_case.values()])
        out[f"hd95_{c}"] = summarize([s[c]["hd95"] for s in per_case.values()])
    out["mean_dice"] = summarize([np.mean([s[c]["dice"] for c in ("1", "2")]) for s in per_case.values()])
    return out


def images_of(work: Path, case_ids: list[str], channel_suffix: bool) -> Path:
    """A folder of links to the images of ``case_ids`` (``_0000`` suffixed for nnU-Net)."""
    folder = work / ("images_nnunet" if channel_suffix else "images_automed")
    folder.mkdir(exist_ok=True)
    for case in case_ids:
        link = folder / (f"{case}_0000.nii.gz" if channel_suffix else f"{case}.nii.gz")
        if not link.exists():
            link.symlink_to(DATA / "imagesTr" / f"{case}.nii.gz")
    return folder


def run_nnunet(config: str, minutes: list[int], work: Path, val: list[str], bin_dir: Path) -> dict:
    """Train fold 0 of ``config`` for ``max(minutes)``, snapshotting its best checkpoint at each
    time; predict the validation cases with every snapshot and score them."""
    env = nnunet_env(work)
    fold = work / "nnUNet_results" / DATASET / f"nnUNetTrainer__nnUNetPlans__{config}" / "fold_0"
    log = work / f"nnunet_{config}.log"
    started = time.monotonic()
    with LoadSampler() as load, log.open("w") as handle:
        proc = subprocess.Popen([str(bin_dir / "nnUNetv2_train"), "4", config, "0", "-device", "cpu"], env=env,
                                stdout=handle, stderr=subprocess.STDOUT)
        snapshots = {}
        for t in sorted(minutes):
            while time.monotonic() - started < t * 60 and proc.poll() is None:
                time.sleep(5)
            best = fold / "checkpoint_best.pth"
            if best.is_file():
                shutil.copyfile(best, fold / f"checkpoint_best_{t}min.pth")
            snapshots[t] = {"elapsed_seconds": time.monotonic() - started, "has_checkpoint": best.is_file(),
                            "finished_before": proc.poll() is not None}
        proc.terminate()
        proc.wait()
    out = {"config": config, "load": load.summary(), "log_tail": log.read_text()[-2000:], "at": {}}
    images = images_of(work, val, channel_suffix=True)
    for t, snap in snapshots.items():
        entry = dict(snap)
        if snap["has_checkpoint"]:
            pred = work / f"pred_nnunet_{config}_{t}min"
            began = time.monotonic()
            subprocess.run([str(bin_dir / "nnUNetv2_predict"), "-i", str(images), "-o", str(pred), "-d", "4", "-c",
                            config, "-f", "0", "-chk", f"checkpoint_best_{t}min.pth", "-device", "cpu",
                            "--disable_progress_bar"], env=env, check=True, capture_output=True)
            entry["predict_seconds"] = time.monotonic() - began
            entry["scores"] = score(pred, val)
        else:
            entry["scores"] = None
            entry["note"] = f"no checkpoint after {t} min: nnU-Net had not finished its first epoch"
        out["at"][str(t)] = entry
    return out


def run_automed(minutes: int, work: Path, folds_file: Path, data: Path, val: list[str], rungs: tuple[str, ...] = (),
                tag: str = "", recipe_file: Path | None = None) -> dict:
    """``automed fit --budget`` on ``data`` judged on the file's fold 0; its recommended rung predicts ``val``.
    ``rungs``: the ladder's rungs (empty: the default ladder, or ``recipe_file``'s)."""
    import automed

    run_folder = work / f"automed_{minutes}min{tag}"
    recipe = automed.Recipe.from_yaml(recipe_file) if recipe_file else automed.Recipe(task="segmentation")
    recipe = recipe.replace(budget_s=minutes * 60, folds_file=str(folds_file), **({"rungs": rungs} if rungs else {}))
    began = time.monotonic()
    with LoadSampler() as load:
        run = automed.fit(recipe, data, run_folder, overwrite=True, progress=False)
    fit_s = time.monotonic() - began
    pred = work / f"pred_automed_{minutes}min{tag}"
    began = time.monotonic()
    run.predict(images_of(work, val, channel_suffix=False), pred, overwrite=True)
    best = run.report_["best_rung"]
    by_rung = {r["name"]: {"status": r["status"], "reason": r.get("reason"), "dice": (r.get("metric") or {}).get("mean"),
                           "allotted_seconds": (r.get("estimate") or {}).get("allotted_seconds"),
                           "fit_seconds": (r.get("cost") or {}).get("fit_seconds"),
                           "throughput": (r.get("details") or {}).get("throughput")} for r in run.report_["rungs"]}
    return {"budget_minutes": minutes, "recipe": str(recipe_file) if recipe_file else None, "fit_seconds": fit_s, "predict_seconds": time.monotonic() - began,
            "ladder": [r["name"] for r in run.report_["rungs"]], "best_rung": best, "rungs": by_rung,
            "load": load.summary(), "scores": score(pred, val)}


def paired(entries: dict, base: str, new: str) -> dict:
    """Mean-Dice gain of stored result ``new`` over ``base``, paired on the cases both scored."""
    from automed.statistics import paired_gain

    def per_case(name: str) -> dict[str, float]:
        if name not in entries or "scores" not in entries[name]:
            raise SystemExit(f"no scored result {name!r} in {OUT}; stored: {sorted(entries)}")
        return {case: float(np.mean([s[c]["dice"] for c in ("1", "2")]))
                for case, s in entries[name]["scores"]["per_case"].items()}

    return paired_gain(per_case(base), per_case(new))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tools", default="automed,nnunet_2d,nnunet_3d_fullres")
    parser.add_argument("--minutes", default="15,30,60")
    parser.add_argument("--cases", type=int, help="Use only the first N cases (a quick check of the pipeline).")
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / ".vs_nnunet_work")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--rungs", default="", help="automed's rungs, comma-separated (default: its default ladder).")
    parser.add_argument("--recipe", type=Path, help="automed's recipe (YAML); its budget and folds are replaced.")
    parser.add_argument("--paired", default="", help="BASE:NEW pairs of stored results to compare (nothing is fitted).")
    parser.add_argument("--tag", default="", help="Suffix of the result names (keeps an earlier run of the same tool and time).")
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"{DATA} not found: skipped")
        return
    if args.paired:
        results = json.loads(args.out.read_text())
        for key in results:
            gains = results[key].setdefault("paired_gains", {})
            for pair in args.paired.split(","):
                base, new = pair.split(":")
                gains[f"{new} - {base}"] = gain = paired(results[key]["results"], base, new)
                print(f"{key}: {new} - {base}: {gain}")
        args.out.write_text(json.dumps(results, indent=2))
        return
    minutes = [int(m) for m in args.minutes.split(",")]
    tools = args.tools.split(",")
    case_ids = sorted(json.loads((DATA / "dataset.json").read_text())["training"], key=lambda e: e["image"])
    case_ids = sorted(Path(e["image"]).name.removesuffix(".nii.gz") for e in case_ids)[:args.cases]
    folds = nnunet_folds(case_ids)
    val = folds[0]["val"]
    args.work.mkdir(parents=True, exist_ok=True)
    convert(args.work, case_ids)
    folds_file = args.work / "splits_final.json"
    folds_file.write_text(json.dumps(folds, indent=2))
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    key = f"{len(case_ids)}_cases"
    results.setdefault(key, {"n_cases": len(case_ids), "n_val": len(val), "val_cases": val, "results": {}})
    from automed.environment import hardware

    results[key]["hardware"] = hardware()

    def save(name: str, value: dict) -> None:
        results[key]["results"][name] = value
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))
        print(json.dumps({name: {k: v for k, v in value.items() if k != "log_tail"}}, indent=1, default=str)[:3000],
              flush=True)

    if any(t.startswith("nnunet") for t in tools):
        bin_dir = install_nnunet()
        env = nnunet_env(args.work)
        preprocessed = args.work / "nnUNet_preprocessed" / DATASET
        if not (preprocessed / "nnUNetPlans.json").is_file():
            began = time.monotonic()
            subprocess.run([str(bin_dir / "nnUNetv2_plan_and_preprocess"), "-d", "4", "-c", "2d", "3d_fullres",
                            "-np", "2", "--verify_dataset_integrity"], env=env, check=True, capture_output=True)
            results[key]["nnunet_preprocess_seconds"] = time.monotonic() - began
        (preprocessed / "splits_final.json").write_text(json.dumps(folds, indent=2))
        for tool in tools:
            if tool.startswith("nnunet_"):
                save(tool + args.tag, run_nnunet(tool.removeprefix("nnunet_"), minutes, args.work, val, bin_dir))
    if "automed" in tools:
        data = args.work / "automed_data"  # the same cases in the MSD layout
        if not data.exists():
            (data / "imagesTr").mkdir(parents=True)
            (data / "labelsTr").mkdir()
            for case in case_ids:
                (data / "imagesTr" / f"{case}.nii.gz").symlink_to(DATA / "imagesTr" / f"{case}.nii.gz")
                (data / "labelsTr" / f"{case}.nii.gz").symlink_to(DATA / "labelsTr" / f"{case}.nii.gz")
            (data / "dataset.json").write_text(json.dumps({
                "name": "Hippocampus", "modality": {"0": "MRI"}, "labels": {str(v): k for k, v in LABELS.items()},
                "numTraining": len(case_ids), "training": [
                    {"image": f"./imagesTr/{c}.nii.gz", "label": f"./labelsTr/{c}.nii.gz"} for c in case_ids]}))
        for t in minutes:
            save(f"automed_{t}min{args.tag}", run_automed(t, args.work, folds_file, data, val,
                                                              tuple(r for r in args.rungs.split(",") if r), args.tag,
                                                              args.recipe))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
