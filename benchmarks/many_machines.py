"""Benchmark the many-machines paths: a search shared by worker processes through PostgreSQL, and the classical
rung's per-case features on Dask.

``trials``: the unet2d search of a fit on 40 hippocampus cases, a fixed 8 trials of 4 epochs each with no pruning
before the last epoch, run (a) by the fit alone and (b) by the fit and one ``automed worker``, every process limited
to one thread (``OMP_NUM_THREADS=1``), against a throw-away PostgreSQL server (``tests/postgres_server.py``).
On this 2-core machine two one-thread processes run side by side, so (b) shows that the trials are shared
correctly and what sharing costs, not a speed-up across machines. The projection for N machines uses the measured
per-trial seconds and a worker's measured start-up (reopening the run and loading its cases).

``dask``: the classical rung's feature extraction and voxel sampling (its ``sample_cases``) on the 200 hippocampus
cases, in this machine's process pool (2 processes) and on a Dask ``LocalCluster`` of 1 and 2 single-thread
worker processes, one after the other: wall seconds, seconds per case [CI over cases], each Dask worker's RSS
before and its peak during the extraction (Linux's VmHWM after resetting it), the client's peak RSS, and whether every case's features and samples are identical to the local path's.

Writes ``benchmarks/results/many_machines.json``; an absent dataset or PostgreSQL is recorded as skipped.

Usage: .venv/bin/python benchmarks/many_machines.py [--part trials|dask]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import ROOT, run_and_record

sys.path.insert(0, str(ROOT / "tests"))  # the tests' throw-away PostgreSQL server
DATA = ROOT.parent / "shared" / "data" / "hippocampus"
AUTOMED = str(Path(sys.executable).with_name("automed"))
N_TRIALS, TRIAL_EPOCHS = 8, 4
RECIPE = f"""task: segmentation
n_folds: 5
n_jobs: 1
rungs:
  - name: unet2d
    params: {{n_trials: {N_TRIALS}, max_epochs: {3 * TRIAL_EPOCHS}, min_epochs: {TRIAL_EPOCHS}, iterations: 40,
             widths: [16], depths: [4], tta: false, augmentations: [light], members: 1}}
"""


def subset(out: Path, n_cases: int) -> Path:
    """The first ``n_cases`` hippocampus training cases as an MSD dataset."""
    dataset = json.loads((DATA / "dataset.json").read_text())
    chosen = dataset["training"][:n_cases]
    for entry in chosen:
        for key in ("image", "label"):
            target = out / entry[key]
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(DATA / entry[key], target)
    (out / "dataset.json").write_text(json.dumps({**dataset, "training": chosen, "numTraining": len(chosen),
                                                  "test": []}))
    return out


def shared_search(n_workers: int, work: Path) -> dict:
    """Fit unet2d with ``n_workers`` extra `automed worker` processes against a new PostgreSQL server."""
    import optuna
    from postgres_server import PASSWORD, start_server

    data = subset(work / "data", 40)
    (work / "recipe.yaml").write_text(RECIPE)
    folder = Path(tempfile.mkdtemp(prefix="automed-postgres-"))
    server = start_server(folder)
    url = server.url()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "AUTOMED_STORAGE": url,
           "PGPASSWORD": PASSWORD}  # libpq reads it: the password stays out of the URL
    run = work / "run"
    try:
        started = time.monotonic()
        fit = subprocess.Popen([AUTOMED, "fit", str(data), "--recipe", str(work / "recipe.yaml"), "--out", str(run),
                                "--quiet"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        workers = [subprocess.Popen([AUTOMED, "worker", str(run)], env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True) for _ in range(n_workers)]
        _, err = fit.communicate()
        assert fit.returncode == 0, err[-3000:]
        logs = [w.communicate()[0] for w in workers]
        wall = time.monotonic() - started
        record = json.loads((run / "run.json").read_text())
        os.environ["PGPASSWORD"] = PASSWORD
        trials = optuna.load_study(study_name=f"{record['run_id']}:unet2d",
                                   storage=url.replace("postgresql:", "postgresql+psycopg:")).trials
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
    result = json.loads((run / "rungs" / "unet2d" / "result.json").read_text())
    done = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    seconds = [(t.datetime_complete - t.datetime_start).total_seconds() for t in done]
    first_start = min(t.datetime_start for t in done)
    last_end = max(t.datetime_complete for t in done)
    joined = [_joined_after(log) for log in logs]
    return {"processes": 1 + n_workers, "threads_per_process": 1, "trials": len(done),
            "trials_by_process": result["details"]["search"]["workers"],
            "search_wall_seconds": (last_end - first_start).total_seconds(),
            "rung_search_seconds": result["cost"]["search_seconds"],
            "trial_seconds": _summary(seconds), "fit_wall_seconds": wall,
            "worker_start_seconds": joined, "chosen": result["details"]["search"]["best_params"],
            "best_inner_dice": result["details"]["search"]["best_value"]}


def _joined_after(log: str) -> float | None:
    """Seconds from a worker's first log line to its 'running trials' line (reopening the run, loading its cases)."""
    from datetime import datetime

    stamps = [line[:23] for line in log.splitlines() if line[:4].isdigit()]
    running = [line[:23] for line in log.splitlines() if "running trials of" in line]
    if not stamps or not running:
        return None
    parse = lambda s: datetime.strptime(s, "%Y-%m-%d %H:%M:%S,%f")  # noqa: E731
    return (parse(running[0]) - parse(stamps[0])).total_seconds()


def _summary(values: list[float]) -> dict:
    from automed.metrics import summarize

    out = summarize(values, 0)
    return {k: out[k] for k in ("mean", "ci_low", "ci_high", "n")}


def projection(one: dict, two: dict, n_trials: int = 32) -> dict:
    """Projected search seconds of ``n_trials`` trials on N machines, each as fast as one of these one-thread
    processes: ceil(n/N) rounds of the measured mean trial, plus a worker's measured start-up."""
    trial = one["trial_seconds"]["mean"]
    start = max([s for s in two["worker_start_seconds"] if s is not None] or [0.0])
    rows = {}
    for n in (1, 2, 4, 8, 16):
        seconds = -(-n_trials // n) * trial + (start if n > 1 else 0.0)
        rows[str(n)] = {"seconds": seconds, "speed_up": n_trials * trial / seconds}
    return {"n_trials": n_trials, "mean_trial_seconds": trial, "worker_start_seconds": start, "machines": rows,
            "assumes": "machines as fast as one one-thread process here, trials of equal length, the database's "
                       "round trips negligible next to a trial (a few ms each), and no pruning"}


def trials_part(work: Path) -> dict:
    if not DATA.is_dir():
        return {"skipped": f"{DATA} is absent"}
    from postgres_server import find_binaries

    if find_binaries() is None:
        return {"skipped": "no PostgreSQL binaries"}
    one = shared_search(0, work / "one")
    two = shared_search(1, work / "two")
    return {"one_process": one, "two_processes": two,
            "search_wall_ratio": two["search_wall_seconds"] / one["search_wall_seconds"],
            "projection": projection(one, two),
            "meaning": "two one-thread processes on this 2-core machine run side by side: the ratio shows the "
                       "trials are shared without loss, not a speed-up across machines"}


def _sampled(cluster, prepared, n_jobs: int, folder: Path) -> tuple[dict, float]:
    from automed.cluster.storage import StudyStorage
    from automed.rungs import rung_class
    from automed.rungs.base import FitContext

    rung = rung_class("classical", "segmentation")()
    context = FitContext(prepared.dataset, prepared.fingerprint, prepared.splits["folds"], folder, 0, n_jobs, None,
                         StudyStorage.resolve(None, folder, None), progress=False, cluster=cluster)
    plan = rung.plan(context)
    started = time.monotonic()
    store = rung.sample_cases(context, plan, list(prepared.dataset.cases))
    return store, time.monotonic() - started


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak() -> float:
    """Reset this process's peak RSS (Linux: ``/proc/self/clear_refs``); return its RSS now (MB). A worker's
    ``ru_maxrss`` cannot be used: a process started by fork carries its parent's peak."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status_mb("VmRSS")


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def _peak_since_reset_mb() -> float:
    return _status_mb("VmHWM")


def dask_part(work: Path) -> dict:
    if not DATA.is_dir():
        return {"skipped": f"{DATA} is absent"}
    import automed
    from automed.cluster.case_map import dask_client
    from automed.tasks import get_task

    prepared = get_task("segmentation").prepare(automed.Recipe(n_jobs=2), DATA, progress=False)
    local, local_s = _sampled(None, prepared, 2, work / "local")
    out = {"cases": len(local), "local_process_pool_2": {"wall_seconds": local_s,
                                                        "seconds_per_case": _summary([d.feature_seconds
                                                                                      for d in local.values()])}}
    for n in (1, 2):
        with dask_client("local", n) as client:
            before = client.run(_reset_peak)  # workers up before the clock starts
            store, seconds = _sampled(client, prepared, n, work / f"dask{n}")
            peaks = client.run(_peak_since_reset_mb)
        identical = all(np.array_equal(store[c].X, local[c].X) and np.array_equal(store[c].y, local[c].y)
                        for c in local)
        out[f"dask_local_{n}_workers"] = {
            "wall_seconds": seconds, "seconds_per_case": _summary([d.feature_seconds for d in store.values()]),
            "rss_mb_per_worker_before": sorted(before.values()), "peak_rss_mb_per_worker": sorted(peaks.values()),
            "identical_to_local": identical}
    out["client_peak_rss_mb"] = _peak_rss_mb()
    out["speed_up_2_vs_1_dask_workers"] = out["dask_local_1_workers"]["wall_seconds"] / \
        out["dask_local_2_workers"]["wall_seconds"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["trials", "dask"], action="append")
    args = parser.parse_args()
    parts = {"trials": trials_part, "dask": dask_part}
    run_and_record(args.part or list(parts), lambda name, work: parts[name](work / name),
                   ROOT / "benchmarks" / "results" / "many_machines.json")


if __name__ == "__main__":
    main()
