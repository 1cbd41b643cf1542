"""Benchmark ``automed audit`` on labels corrupted on purpose: does it rank the corrupted cases first, and how
much does it flag on clean labels?

- ``breastmnist_flipped``: BreastMNIST with 5 % of its training labels flipped (seeded); the classical rung
  (the default recipe's baseline) fitted, then audited. Recall of the flipped cases among the top 2k (k = number
  flipped), precision among the top k, and how many cases the audit flags with what precision.
- ``breastmnist_clean``: the same on the original file: how many it flags there.
- ``hippocampus_corrupted``: the 200 MSD hippocampus cases with 10 labels corrupted (seeded: 3 eroded, 3 shifted
  by 3 voxels, 2 with anterior and posterior swapped, 2 with a structure deleted), the classical rung fitted
  under its default bound (5-fold out-of-fold masks of every case), then audited: recall among the top 20, per
  kind, and how many clean cases it flags.

Writes ``benchmarks/results/label_audit.json``; absent datasets are recorded as skipped.

Usage: .venv/bin/python benchmarks/label_audit.py [--only NAME] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

import automed
from _common import ROOT, run_and_record

DATA = ROOT.parent / "shared" / "data"
BREAST = DATA / "medmnist" / "breastmnist.npz"
HIPPO = DATA / "hippocampus"
FLIP_FRACTION, SEED = 0.05, 0


def flipped_breastmnist(workdir: Path) -> tuple[Path, set[str]]:
    """BreastMNIST with ``FLIP_FRACTION`` of the training labels flipped; the flipped case ids (``train_N``)."""
    with np.load(BREAST) as z:
        arrays = {k: z[k].copy() for k in z.files}
    rng = np.random.default_rng(SEED)
    n = len(arrays["train_labels"])
    flipped = rng.choice(n, int(round(FLIP_FRACTION * n)), replace=False)
    arrays["train_labels"][flipped] = 1 - arrays["train_labels"][flipped]
    out = workdir / "breastmnist_flipped.npz"
    np.savez(out, **arrays)
    return out, {f"train_{i}" for i in flipped}


def corrupted_hippocampus(workdir: Path) -> tuple[Path, dict[str, str]]:
    """The hippocampus dataset with 10 labels corrupted (case id -> kind); the rest linked unchanged."""
    import SimpleITK as sitk
    from scipy import ndimage

    meta = json.loads((HIPPO / "dataset.json").read_text())
    out = workdir / "hippocampus_corrupted_data"
    for folder in ("imagesTr", "labelsTr"):
        (out / folder).mkdir(parents=True)
    rng = np.random.default_rng(SEED)
    kinds = ["eroded"] * 3 + ["shifted"] * 3 + ["classes_swapped"] * 2 + ["structure_deleted"] * 2
    chosen = rng.choice(len(meta["training"]), len(kinds), replace=False)
    corrupted = {}
    for i, case in enumerate(meta["training"]):
        (out / case["image"]).symlink_to((HIPPO / case["image"]).resolve())
        if i not in chosen:
            (out / case["label"]).symlink_to((HIPPO / case["label"]).resolve())
            continue
        kind = kinds[list(chosen).index(i)]
        image = sitk.ReadImage(str(HIPPO / case["label"]))
        label = sitk.GetArrayFromImage(image)
        if kind == "eroded":
            new = np.zeros_like(label)
            for k in (1, 2):
                new[ndimage.binary_erosion(label == k, iterations=1)] = k
        elif kind == "shifted":
            new = np.roll(label, 3, axis=int(rng.integers(label.ndim)))
        elif kind == "classes_swapped":
            new = np.where(label == 1, 2, np.where(label == 2, 1, 0)).astype(label.dtype)
        else:
            new = np.where(label == int(rng.integers(1, 3)), 0, label).astype(label.dtype)
        written = sitk.GetImageFromArray(new)
        written.CopyInformation(image)
        sitk.WriteImage(written, str(out / case["label"]))
        corrupted[Path(case["label"]).name.split(".")[0]] = kind
    (out / "dataset.json").write_text(json.dumps({**meta, "test": [], "numTest": 0}))
    return out, corrupted


def scores(audit, bad: set[str]) -> dict:
    """Recall of ``bad`` among the top k and 2k, precision among the top k, and the flag's precision/recall."""
    ranked = [c.case_id for c in audit.cases]
    k = len(bad)
    flagged = {c.case_id for c in audit.suspects}
    return {"n_cases": len(ranked), "n_corrupted": k, "recall_top_k": len(bad & set(ranked[:k])) / k if k else None,
            "recall_top_2k": len(bad & set(ranked[:2 * k])) / k if k else None,
            "precision_top_k": len(bad & set(ranked[:k])) / k if k else None,
            "n_flagged": len(flagged), "flagged_corrupted": len(flagged & bad),
            "flag_precision": len(flagged & bad) / len(flagged) if flagged and k else None,
            "flag_recall": len(flagged & bad) / k if k else None, "flagged_by_evidence": by_evidence(audit)}


EVIDENCE = {"cleanlab doubts": "label_issue", "nearly the same image": "near_duplicate_across_splits",
            "the same pixels": "exact_duplicate", "unlike the other images": "outlier",
            "the rungs agree with one another": "disagreement", "labelled components that no rung": "missed_component",
            "every rung predicts": "extra_component", "an implausible volume": "volume", "an implausible number of pieces": "pieces",
            "lies where": "position"}


def by_evidence(audit) -> dict[str, int]:
    """How many flagged cases carry each kind of evidence (a case may carry several)."""
    counts: dict[str, int] = {}
    for case in audit.suspects:
        kinds = {kind for reason in case.reasons for start, kind in EVIDENCE.items() if start in reason}
        for kind in kinds:
            counts[kind] = counts.get(kind, 0) + 1
    return counts


def fit_and_audit(data: Path, recipe: automed.Recipe, out: Path) -> tuple[automed.Run, object, dict]:
    started = time.monotonic()
    run = automed.fit(recipe, data, out, overwrite=True, progress=False)
    fitted = time.monotonic() - started
    started = time.monotonic()
    audit = run.audit()
    return run, audit, {"fit_seconds": fitted, "audit_seconds": time.monotonic() - started}


def breast(name: str, workdir: Path) -> dict:
    if not BREAST.is_file():
        return {"dataset": name, "status": "skipped", "reason": f"{BREAST} not found"}
    data, bad = (flipped_breastmnist(workdir) if name == "breastmnist_flipped" else (BREAST, set()))
    run, audit, seconds = fit_and_audit(data, automed.Recipe(task="classification", rungs=["classical"]),
                                        workdir / name)
    result = {"dataset": name, "status": "done", "flipped_fraction": FLIP_FRACTION if bad else 0.0,
              **seconds, **scores(audit, bad), "source": audit.source, "excluding_top": audit.excluding_top,
              "top_10": [{"case": c.case_id, "split": c.split, "reasons": list(c.reasons)} for c in audit.cases[:10]],
              "hardware": run.report_["hardware"]}
    if bad:
        result["goals_met"] = {"recall_top_2k_at_least_0.5": result["recall_top_2k"] >= 0.5}
    else:
        result["goals_met"] = {"flags_under_5_percent": result["n_flagged"] < 0.05 * result["n_cases"]}
    return result


def hippocampus(name: str, workdir: Path) -> dict:
    if not (HIPPO / "dataset.json").is_file():
        return {"dataset": name, "status": "skipped", "reason": f"{HIPPO} not found"}
    data, corrupted = corrupted_hippocampus(workdir)
    run, audit, seconds = fit_and_audit(data, automed.Recipe(task="segmentation", rungs=["classical"]),
                                        workdir / name)
    top20 = {c.case_id for c in audit.cases[:20]}
    by_kind = {}
    for case, kind in corrupted.items():
        by_kind.setdefault(kind, {"n": 0, "in_top_20": 0})
        by_kind[kind]["n"] += 1
        by_kind[kind]["in_top_20"] += case in top20
    rank = {c.case_id: i + 1 for i, c in enumerate(audit.cases)}
    result = {"dataset": name, "status": "done", **seconds, **scores(audit, set(corrupted)),
              "recall_top_20": len(top20 & set(corrupted)) / len(corrupted), "by_kind": by_kind,
              "corrupted_ranks": {c: {"kind": k, "rank": rank.get(c)} for c, k in corrupted.items()},
              "source": audit.source, "excluding_top": audit.excluding_top,
              "top_20": [{"case": c.case_id, "reasons": list(c.reasons)} for c in audit.cases[:20]],
              "hardware": run.report_["hardware"]}
    result["goals_met"] = {"recall_top_20_at_least_0.7": result["recall_top_20"] >= 0.7}
    return result


RUNS = {"breastmnist_flipped": breast, "breastmnist_clean": breast, "hippocampus_corrupted": hippocampus}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(RUNS))
    parser.add_argument("--keep", type=Path, help="Keep the data and run folders in this folder.")
    args = parser.parse_args()
    names = [args.only] if args.only else list(RUNS)
    with tempfile.TemporaryDirectory() as tmp:
        run_and_record(names, lambda name, _: RUNS[name](name, args.keep or Path(tmp)),
                       ROOT / "benchmarks" / "results" / "label_audit.json")


if __name__ == "__main__":
    main()
