"""Benchmark where a deep rung's CPU training time goes, and what bfloat16 buys and costs.

On the hippocampus (``../shared/data/hippocampus``), with unet3d's default configuration as the
rung plans it (patch, batch, width):

* **step anatomy**: median seconds of drawing and augmenting one batch (the data path), and of
  one optimiser step on a fixed batch in fp32, under bfloat16 autocast, and in fp32 with
  ``channels_last_3d``, with the FLOPs of a step and the fraction of the measured peak; then
  seconds per step of the whole loop (draw, then step) with batches drawn in turn and drawn
  ahead on a background thread, in fp32 and bfloat16;
* **Dice**: the same seeded training (fixed epochs, same cases) in fp32 and in bfloat16, and
  bfloat16 given fp32's wall time; scored on held-out cases without mirroring, with the
  paired per-case Dice difference and its bootstrap 95% CI.

Trainings run one after the other. Writes ``benchmarks/results/cpu_training.json``.

Usage: .venv/bin/python benchmarks/cpu_training.py [--epochs 25] [--train-cases 60] [--val-cases 20]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from _common import ROOT

DATA = ROOT.parent / "shared" / "data" / "hippocampus"
OUT = ROOT / "benchmarks" / "results" / "cpu_training.json"


def median_seconds(run, repeats: int) -> float:
    run()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def step_anatomy(config, source, fp, peak) -> dict:
    import torch

    from automed.deep.augment import training_transform
    from automed.deep.loop import train_step
    from automed.deep.throughput import step_flops
    from automed.deep.training import CLIP_NORM, make_batch, training_loss
    from automed.nets import build_network

    rng = np.random.default_rng(0)
    transform = training_transform(config.patch, config.augmentation, 0)
    data_s = median_seconds(lambda: make_batch(source, transform, rng, config.batch_size, config.patch), 20)
    images, labels = make_batch(source, transform, rng, config.batch_size, config.patch)
    voxels = labels.numel()
    out = {"data_seconds_per_batch": data_s, "batch_voxels": voxels}
    for name, bf16, channels_last in (("fp32", False, False), ("bf16", True, False), ("fp32_channels_last_3d", False, True)):
        torch.manual_seed(0)
        model = build_network(config, fp.n_channels, fp.n_classes)
        x = images
        if channels_last:
            model = model.to(memory_format=torch.channels_last_3d)
            x = images.contiguous(memory_format=torch.channels_last_3d)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)
        scaler = torch.amp.GradScaler("cuda", enabled=False)
        loss_fn = training_loss(config, False)
        model.train()

        def step() -> None:
            train_step(model, optimizer, scaler, loss_fn, x, labels, False, CLIP_NORM, bf16)

        seconds = median_seconds(step, 10)
        flops = step_flops(step)
        out[name] = {"network_seconds_per_step": seconds, "flops_per_step": flops,
                     "gflops_per_second": flops / seconds / 1e9,
                     "fraction_of_matmul_fp32_peak": flops / seconds / 1e9 / peak["matmul_fp32_gflops"],
                     "steps_per_second_with_data": 1 / (seconds + data_s),
                     "data_share": data_s / (seconds + data_s)}
    for bf16 in (False, True):
        for prefetch in (0, 2):
            out[f"loop_{'bf16' if bf16 else 'fp32'}_prefetch{prefetch}_seconds_per_step"] = loop_seconds(
                replace(config, cpu_bfloat16=bf16), source, fp, prefetch)
    return out


def loop_seconds(config, source, fp, prefetch: int, n_steps: int = 20) -> float:
    """Seconds per step of ``n_steps`` draws and steps, batches drawn ahead when ``prefetch``."""
    import torch

    from automed.deep.augment import training_transform
    from automed.deep.loop import train_step
    from automed.deep.training import CLIP_NORM, drawn_batches, make_batch, training_loss
    from automed.nets import build_network

    torch.manual_seed(0)
    model = build_network(config, fp.n_channels, fp.n_classes)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    loss_fn = training_loss(config, False)
    rng = np.random.default_rng(0)
    transform = training_transform(config.patch, config.augmentation, 0)
    model.train()

    def run(n: int) -> None:
        for images, labels in drawn_batches(lambda: make_batch(source, transform, rng, config.batch_size,
                                                               config.patch), n, prefetch):
            train_step(model, optimizer, scaler, loss_fn, images, labels, False, CLIP_NORM, config.cpu_bfloat16)

    run(2)  # warm-up
    started = time.perf_counter()
    run(n_steps)
    return (time.perf_counter() - started) / n_steps


def train_and_score(config, volumes, train_ids, val_ids, fp, epochs, folder) -> dict:
    import torch

    from automed.deep.inference import predict_proba
    from automed.deep.training import Schedule, train
    from automed.deep.volumes import SampleSource
    from automed.metrics import dice_per_class
    from automed.nets import build_network

    device = torch.device("cpu")
    source = SampleSource({c: volumes[c] for c in train_ids}, None)
    inner_val = [volumes[c] for c in train_ids[:5]]  # early-stopping cases, as the rung holds some out
    started = time.monotonic()
    result = train(config, Schedule(epochs, 40, epochs), source, inner_val, None, fp.n_classes, fp.n_channels, folder,
                   0, device, False)
    wall = time.monotonic() - started
    model = build_network(config, fp.n_channels, fp.n_classes)
    model.load_state_dict(torch.load(folder / "best.pt", weights_only=True)["model"])
    dice = {c: float(dice_per_class(predict_proba(model, volumes[c].image, config.patch, None, device,
                                                  bfloat16=config.cpu_bfloat16).argmax(0),
                                    volumes[c].label, fp.n_classes)[1:].mean()) for c in val_ids}
    return {"epochs": result.epochs, "best_epoch": result.best_epoch, "train_wall_seconds": wall,
            "mean_dice": float(np.mean(list(dice.values()))), "per_case": dice, "stop_reason": result.stop_reason}


def paired(a: dict, b: dict) -> dict:
    from automed.metrics import summarize

    return summarize([b[c] - a[c] for c in a])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--train-cases", type=int, default=60)
    parser.add_argument("--val-cases", type=int, default=20)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    if not DATA.is_dir():
        args.out.write_text(json.dumps({"status": "skipped", "reason": f"{DATA} not found"}, indent=2))
        return
    import torch

    from automed.data.dataset import open_dataset
    from automed.data.fingerprint import compute_fingerprint
    from automed.deep.throughput import compute_peak
    from automed.deep.volumes import SampleSource, load_volumes
    from automed.environment import hardware
    from automed.rungs import rung_class

    dataset = open_dataset(DATA)
    fp = compute_fingerprint(dataset, progress=False)
    ids = sorted(c.case_id for c in dataset.cases)
    val_ids = ids[::5][:args.val_cases]
    train_ids = [c for c in ids if c not in val_ids][:args.train_cases]
    rung = rung_class("unet3d", "segmentation")()
    patch = rung._patch(fp, None)
    settings = {"axis": None, "patch": patch, "widths": sorted(rung.params.widths),
                "batch_sizes": sorted(rung.params.batch_sizes or rung._default_batch_sizes(patch))}
    config = rung._config(rung._default_space(settings), settings)
    peak = compute_peak(torch.device("cpu"))
    with tempfile.TemporaryDirectory() as tmp:
        volumes = load_volumes(dataset, fp, train_ids + val_ids, Path(tmp) / "cache")
        report = {"hardware": hardware(), "peak": peak, "config": asdict(config), "n_train": len(train_ids),
                  "n_val": len(val_ids), "epochs": args.epochs,
                  "anatomy": step_anatomy(config, SampleSource({c: volumes[c] for c in train_ids}, None), fp, peak)}
        print(json.dumps(report["anatomy"], indent=2), flush=True)
        runs = {}
        runs["fp32"] = train_and_score(config, volumes, train_ids, val_ids, fp, args.epochs, Path(tmp) / "fp32")
        bf16 = replace(config, cpu_bfloat16=True)
        runs["bf16_same_epochs"] = train_and_score(bf16, volumes, train_ids, val_ids, fp, args.epochs,
                                                   Path(tmp) / "bf16")
        # the epochs bf16 fits in fp32's wall time, planned up front as the rung plans them (poly decay to the end)
        same_time = round(args.epochs * runs["fp32"]["train_wall_seconds"] / runs["bf16_same_epochs"]["train_wall_seconds"])
        runs["bf16_same_time"] = train_and_score(bf16, volumes, train_ids, val_ids, fp, same_time,
                                                 Path(tmp) / "bf16_time")
    report["trainings"] = runs
    report["bf16_minus_fp32"] = {name: paired(runs["fp32"]["per_case"], runs[name]["per_case"])
                                 for name in ("bf16_same_epochs", "bf16_same_time")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps({k: {m: v[m] for m in ("epochs", "train_wall_seconds", "mean_dice")} for k, v in runs.items()},
                     indent=2))
    print(json.dumps(report["bf16_minus_fp32"], indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
