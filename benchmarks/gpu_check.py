"""The GPU path in one short run: estimated against measured peak VRAM, throughput and scores per deep rung.

Fits, one after the other:

* the hippocampus segmentation ladder (every deep rung, a short fixed schedule each);
* the BreastMNIST classification ladder (the CNN);
* a memory table: every deep segmentation rung's trained configuration, and CT-sized 3D and
  2D configurations, probed as the planner probes them (float16 AMP, and fp32) and then
  trained for a few steps with a validation pass, recording the probe's estimate and the
  measured peaks (``torch.cuda.max_memory_allocated`` and ``max_memory_reserved``);
* ``--max-vram 8GB`` on synthetic CT-sized volumes: the plan shrinks the batch, and the
  training's measured peak stays under the limit.

For every deep rung of the ladders it records steps per second, the share of step time spent
waiting for batches, seconds per epoch, out-of-memory events, what was shrunk and the Dice or
AUC reached. Goal on one GPU: about 3 minutes in all.

The data are ``--data``'s ``hippocampus/`` and ``medmnist/breastmnist.npz``: ``../shared/data``
when present, else the small copies in ``examples/`` (30 hippocampus cases). ``--device cpu``
hides any GPU (``CUDA_VISIBLE_DEVICES=""``); ``--tiny`` trains a few steps only on small
configurations (what the tests run).

Writes ``benchmarks/results/gpu_check.json`` (one entry per device) and, with ``--keep DIR``,
each ladder's ``report.json`` as ``DIR/<ladder>.report.json``.

Usage: python benchmarks/gpu_check.py [--device cuda|cpu] [--data DIR] [--tiny] [--keep DIR]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
EXAMPLES = ROOT / "examples"
OUT = ROOT / "benchmarks" / "results" / "gpu_check.json"
SEGMENTATION_RUNGS = ("unet2d", "unetpp", "unet3d", "segresnet", "dynunet")
#: A short fixed schedule per deep rung (no search): enough steps for steady throughput.
SEGMENTATION = {"n_trials": 0, "max_epochs": 3, "min_epochs": 1, "iterations": 40, "tta": False}
CLASSIFICATION = {"n_trials": 0, "max_epochs": 6, "min_epochs": 1, "n_models": 1}
TINY_SEGMENTATION = {"n_trials": 0, "max_epochs": 2, "min_epochs": 1, "iterations": 2, "widths": [8], "depths": [3],
                     "batch_sizes": [2], "tta": False}
TINY_CLASSIFICATION = {"n_trials": 0, "max_epochs": 2, "min_epochs": 1, "widths": [4], "depths": [1],
                       "batch_sizes": [16], "n_models": 1}
#: CT-sized configurations of the memory table, each rung's largest searchable one: (rung, patch, batch, width)
LARGE = (("unet3d", (128, 128, 128), 2, 32), ("segresnet", (128, 128, 128), 2, 32),
         ("dynunet", (128, 128, 128), 2, 32), ("unet2d", (512, 512), 8, 32))
TINY_LARGE = (("unet3d", (16, 16, 16), 2, 8),)
#: The --max-vram ladder: synthetic volumes this large, unet3d allowed batches up to 8 at a 128^3 patch.
MAX_VRAM_SHAPE, TINY_MAX_VRAM_SHAPE = (160, 160, 160), (20, 20, 20)
MAX_VRAM_PARAMS = {"n_trials": 0, "max_epochs": 1, "min_epochs": 1, "iterations": 10, "widths": [32],
                   "batch_sizes": [2, 4, 8], "tta": False}


def deep_rungs(run: Any) -> dict[str, dict[str, Any]]:
    """Per deep rung: estimated and measured memory, throughput, epoch time, events and the score."""
    out = {}
    for rung in run.report_["rungs"]:
        details, cost = rung.get("details") or {}, rung.get("cost") or {}
        trainings = details.get("trainings") or details.get("training")
        if rung["status"] != "done" or not trainings:
            if rung["status"] != "done" and rung["name"] != "classical":
                out[rung["name"]] = {"status": rung["status"], "reason": rung.get("reason")}
            continue
        estimate, peak = cost.get("est_train_vram_bytes"), cost.get("peak_vram_bytes")
        epochs = sum(t.get("epochs", 0) for t in trainings)
        metric = (rung.get("comparison") or {}).get("metric") or rung.get("metric") or {}
        throughput = details.get("throughput") or {}
        out[rung["name"]] = {
            "status": "done", "device": cost.get("device"), "est_train_vram_bytes": estimate,
            # the whole rung: the planner's probes of its largest configuration included
            "peak_vram_bytes": peak, "peak_over_estimate": None if not (estimate and peak) else peak / estimate,
            "steps_per_second": throughput.get("steps_per_second"), "data_share": throughput.get("data_share"),
            "gflops_per_second": throughput.get("gflops_per_second"),
            "epoch_seconds": sum(t.get("seconds", 0.0) for t in trainings) / max(1, epochs),
            "epochs": epochs, "events": [e for t in trainings for e in t.get("events", [])],
            "shrunk": rung.get("shrunk"), "config": details.get("config"), "slice_axis": details.get("slice_axis"),
            "fit_seconds": cost.get("fit_seconds"), "gpu_hours": cost.get("gpu_hours"),
            "metric": metric.get("name"), "score": metric.get("mean"),
            "score_ci": [metric.get("ci_low"), metric.get("ci_high")], "n": metric.get("n")}
    return out


def fit(name: str, recipe: Any, data: Path, work: Path, keep: Path | None) -> dict[str, Any]:
    """Fit ``recipe`` on ``data``; the deep rungs' numbers (and the report kept in ``keep``)."""
    import automed

    started = time.monotonic()
    run = automed.fit(recipe, data, work / name, progress=False)
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(run.folder / "report.json", keep / f"{name}.report.json")
    entry = {"wall_seconds": time.monotonic() - started, "budget_s": recipe.budget_s,
             "max_vram_bytes": recipe.max_vram_bytes, "recommended": run.best(), "rungs": deep_rungs(run)}
    print(json.dumps({name: entry}, indent=1, default=str), flush=True)
    return entry


def synthetic_volumes(shape: tuple[int, ...], n_classes: int, n: int, seed: int = 0) -> dict[str, Any]:
    """``n`` random one-channel volumes with a labelled cube: memory does not depend on content."""
    from automed.deep.volumes import Volume

    rng = np.random.default_rng(seed)
    volumes = {}
    for i in range(n):
        label = np.zeros(shape, np.uint8)
        centre = tuple(slice(s // 4, 3 * s // 4) for s in shape)
        label[centre] = rng.integers(1, n_classes, size=label[centre].shape, dtype=np.uint8)
        volumes[f"v{i}"] = Volume(f"v{i}", rng.standard_normal((1, *shape), dtype=np.float32), label, None,
                                  (1.0,) * len(shape))
    return volumes


def measure_config(config: Any, axis: int | None, shape: tuple[int, ...], device: Any, n_steps: int,
                   n_classes: int = 3) -> dict[str, Any]:
    """One configuration: the planner's probe (AMP and fp32 on CUDA) and a short real training's peaks."""
    import torch

    from automed.deep.probe import probe, training_memory
    from automed.deep.training import Schedule, train
    from automed.deep.volumes import SampleSource

    cuda = device.type == "cuda"
    volumes = synthetic_volumes(shape, n_classes, 3)
    source = SampleSource({k: volumes[k] for k in ("v0", "v1")}, axis)
    entry: dict[str, Any] = {"architecture": config.architecture, "spatial_dims": config.spatial_dims,
                             "patch": list(config.patch), "batch_size": config.batch_size, "width": config.width,
                             "hp": config.hp, "volume_shape": list(shape)}
    for precision, amp in (("amp", cuda), ("fp32", False)):
        if precision == "amp" and not cuda:
            continue
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        measured = probe(config, source, 1, n_classes, device, False, amp=amp)
        entry[precision] = {
            "n_params": measured.n_params, "activation_bytes": measured.activation_bytes,
            "formula_bytes": training_memory(measured.n_params, measured.activation_bytes, None),
            "estimate_bytes": measured.train_memory_bytes, "probe_peak_bytes": measured.peak_vram_bytes,
            "probe_reserved_bytes": int(torch.cuda.max_memory_reserved(device)) if cuda else None,
            "seconds_per_step": measured.seconds_per_step}
        gc.collect()
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    with tempfile.TemporaryDirectory() as folder:
        started = time.monotonic()
        result = train(config, Schedule(1, n_steps, None), source, [volumes["v2"]], axis, n_classes, 1, Path(folder),
                       0, device, False)
        entry["training"] = {"steps": result.state["steps"], "seconds": time.monotonic() - started,
                             "batch_size": result.state["batch_size"], "events": result.state["events"],
                             "peak_bytes": int(torch.cuda.max_memory_allocated(device)) if cuda else None,
                             "reserved_bytes": int(torch.cuda.max_memory_reserved(device)) if cuda else None}
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
        peak, estimate = entry["training"]["peak_bytes"], entry["amp"]["formula_bytes"]
        entry["training_peak_over_formula"] = peak / estimate
        entry["training_reserved_over_formula"] = entry["training"]["reserved_bytes"] / estimate
        entry["training_peak_over_probe_peak"] = peak / entry["amp"]["probe_peak_bytes"]
    print(json.dumps(entry, default=str), flush=True)
    return entry


def memory_table(ladder: dict[str, Any], device: Any, tiny: bool) -> list[dict[str, Any]]:
    """Estimated against measured training memory of the ladder's trained configurations and of
    CT-sized ones (:func:`measure_config`)."""
    from automed.deep.training import NetConfig, config_from_dict
    from automed.nets import architecture
    from automed.rungs import rung_class
    from automed.rungs.segmentation.deep_params import DeepParams

    table = []
    for name, rung in ladder["rungs"].items():
        if rung.get("status") != "done":
            continue
        config = config_from_dict(rung["config"])
        margin = 8 if config.spatial_dims == 3 else 0
        shape = tuple(s + margin for s in config.patch) if config.spatial_dims == 3 else (6, *config.patch)
        axis = None if config.spatial_dims == 3 else 0
        table.append({"rung": name, "case": "ladder", **measure_config(config, axis, shape, device, 2 if tiny else 10)})
    for name, patch, batch, width in TINY_LARGE if tiny else LARGE:
        path = rung_class(name, "segmentation").architecture
        hp = architecture(path).largest(DeepParams(depths=(3,)) if tiny else DeepParams())
        config = NetConfig(path, len(patch), width, hp, "dice_ce", 3e-3, batch, "medium", patch)
        shape = tuple(s + 32 for s in patch) if len(patch) == 3 else (4, *patch)
        table.append({"rung": name, "case": "large", **measure_config(config, None if len(patch) == 3 else 0, shape,
                                                                       device, 2 if tiny else 10)})
    return table


def write_volumes(root: Path, shape: tuple[int, ...], n_cases: int, seed: int = 0) -> Path:
    """A synthetic MSD-layout dataset of ``n_cases`` volumes of ``shape`` (for the memory limit)."""
    import SimpleITK as sitk

    rng = np.random.default_rng(seed)
    training = []
    for i in range(n_cases):
        volume = next(iter(synthetic_volumes(shape, 3, 1, seed + i).values()))
        name = f"case_{i:03d}.nii.gz"
        for kind, array in (("imagesTr", volume.image[0]), ("labelsTr", volume.label)):
            (root / kind).mkdir(parents=True, exist_ok=True)
            sitk.WriteImage(sitk.GetImageFromArray(array), str(root / kind / name))
        training.append({"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}"})
    rng.shuffle(training)
    (root / "dataset.json").write_text(json.dumps({"name": "synthetic", "modality": {"0": "CT"},
                                                   "labels": {"0": "background", "1": "a", "2": "b"},
                                                   "numTraining": n_cases, "training": training}))
    return root


def data_paths(args: argparse.Namespace) -> tuple[Path, Path]:
    """The hippocampus folder and the BreastMNIST file: ``--segmentation``/``--classification``,
    else under ``--data``, else ``../shared/data`` when present, else ``examples/``."""
    root = args.data or (SHARED if (SHARED / "hippocampus").is_dir() else EXAMPLES)
    return (args.segmentation or root / "hippocampus",
            args.classification or root / "medmnist" / "breastmnist.npz")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], default=None, help="Default: cuda when present.")
    parser.add_argument("--tiny", action="store_true", help="A few training steps per rung (the tests' check).")
    parser.add_argument("--data", type=Path, default=None,
                        help="Folder holding hippocampus/ and medmnist/breastmnist.npz (default: ../shared/data "
                             "when present, else examples/).")
    parser.add_argument("--segmentation", type=Path, default=None)
    parser.add_argument("--classification", type=Path, default=None)
    parser.add_argument("--keep", type=Path, default=None, help="Copy each ladder's report.json here.")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # before torch is imported: no GPU is seen
    import torch

    import automed

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is visible")
    segmentation, classification = data_paths(args)
    if not segmentation.is_dir() or not classification.is_file():
        raise SystemExit(f"{segmentation} or {classification} not found: pass --data, --segmentation or "
                         "--classification.")
    seg_params, cls_params = (TINY_SEGMENTATION, TINY_CLASSIFICATION) if args.tiny else (SEGMENTATION, CLASSIFICATION)
    seg_rungs = [{"name": n, "params": seg_params} for n in SEGMENTATION_RUNGS]
    cls_rungs = [{"name": "cnn", "params": cls_params}]  # the deep rungs only: the classical ones are CPU work
    from automed.environment import hardware

    entry: dict[str, Any] = {"device": device, "gpu": hardware()["gpu"], "tiny": args.tiny, "torch": torch.__version__,
                             "cuda": torch.version.cuda, "data": str(segmentation.parent)}
    work = Path(tempfile.mkdtemp(prefix="gpu_check_"))
    began = time.monotonic()

    def save(name: str, value: Any) -> None:  # after every section: a run stopped at its time limit keeps the rest
        entry[name], entry["total_seconds"] = value, time.monotonic() - began
        previous = json.loads(args.out.read_text()) if args.out.is_file() else {}
        previous[device + ("_tiny" if args.tiny else "")] = entry
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(previous, indent=2, default=str))

    try:
        seg = automed.Recipe(task="segmentation", full_ladder=True, rungs=tuple(seg_rungs))
        save("segmentation", fit("segmentation", seg, segmentation, work, args.keep))
        cls = automed.Recipe(task="classification", full_ladder=True, rungs=tuple(cls_rungs))
        save("classification", fit("classification", cls, classification, work, args.keep))
        save("memory_table", memory_table(entry["segmentation"], torch.device(device), args.tiny))
        big = write_volumes(work / "synthetic_ct", TINY_MAX_VRAM_SHAPE if args.tiny else MAX_VRAM_SHAPE, 5)
        limited = automed.Recipe(task="segmentation", full_ladder=True, max_vram="8GB",
                                 rungs=({"name": "unet3d", "params": TINY_SEGMENTATION if args.tiny else
                                         MAX_VRAM_PARAMS},))
        save("segmentation_max_vram_8gb", fit("segmentation_max_vram_8gb", limited, big, work, args.keep))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {args.out}")
    return entry


if __name__ == "__main__":
    main()
