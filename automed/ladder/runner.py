"""The one place with side effects: build a run folder from a recipe and a dataset.

A fit writes into a hidden sibling folder and renames it into place only when
everything succeeded, so a run folder is either complete or absent (see
:mod:`automed.ladder.staging`); rungs are judged by :mod:`automed.ladder.judge`.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import uuid
from contextlib import ExitStack
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from automed.errors import RecipeError, RunFolderError
from automed.cluster.case_map import dask_client
from automed.cluster.storage import StudyStorage
from automed.ladder.contexts import Execution, context_factory
from automed.ladder.judge import judge
from automed.ladder.lock import run_lock
from automed.ladder.learning_curve import learning_curve
from automed.ladder.site_shift import site_shift
from automed.ladder.outputs import check_output_folder, refuse_overlap
from automed.ladder.reopen import Reopened, reopen_run
from automed.ladder.replay import REALISED_PLAN, REPLAY, check_replayed_data, pinned_plan, realised_plan
from automed.ladder.staging import STATE, Clock, foreign_files, run_folder, run_staged, staging_folder, write_json
from automed.library_warnings import logged_once
from automed.recipe import Recipe
from automed.results import RESULT, Cost, Estimate, RungResult, read_result, write_result
from automed.run_record import RunRecord, read_run, write_run
from automed.rungs.base import VOLUME_CACHE, FitContext
from automed.rungs.fitted import weight_checksums
from automed.rungs.records import save_plan, saved_plan
from automed.tasks import get_task

__all__ = ["fit_run", "resume_run"]

log = logging.getLogger("automed")
LISTING = "dataset_listing.json"
"""The dataset's files and sizes when the fit started, for a resume to name what changed."""


def fit_run(recipe: Recipe, data: str | Path, out: str | Path, overwrite: bool = False, progress: bool = True,
            replay: dict[str, Any] | None = None, execution: Execution = Execution()) -> Path:
    """Climb the ladder of ``recipe`` on the dataset at ``data`` and write the run folder ``out``.

    ``replay`` (from :func:`automed.ladder.replay.replay_inputs`) pins each rung's plan to the one
    another run realised.

    The fit writes into the hidden folder ``.<out>.partial`` and renames it to ``out``
    when every rung is done. If it is interrupted after its set-up (Ctrl-C, a crash, a
    kill), that folder stays and :func:`resume_run` continues it.

    Returns
    -------
    Path
        The finished run folder.

    Raises
    ------
    RunFolderError
        If ``out`` or an interrupted fit of it exists and ``overwrite`` is false.
    DataError, RecipeError
        Bad data or recipe; nothing is left behind.
    """
    out, data = Path(out), Path(data)
    inputs = {"the dataset": data}
    if replay is not None:
        inputs["the run it replays"] = Path(replay["of"])
    refuse_overlap(out, inputs)
    with run_lock(out):
        check_output_folder(out, overwrite, "run")
        if out.is_dir() and (foreign := foreign_files(out)):
            raise RunFolderError(f"{out / foreign[0]}: not written by automed, so --overwrite will not replace the run "
                                 f"folder holding it ({len(foreign)} such file(s)); move it out, or choose another --out.")
        staging = staging_folder(out)
        if staging.exists():
            if not overwrite:
                raise RunFolderError(f"{staging}: an interrupted fit of {out} is there; continue it with "
                                     f"`automed fit --resume {out}` or pass --overwrite to start again.")
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        cache_from = out if out.is_dir() else None
        return run_staged(out, lambda folder: _set_up(recipe, data, folder, progress, cache_from, replay, execution),
                          lambda folder, started: _climb(folder, progress, started, execution))


def resume_run(out: str | Path, progress: bool = True, execution: Execution = Execution()) -> Path:
    """Continue the interrupted fit of ``out``: finished rungs and Optuna trials are kept,
    an interrupted training continues from its last checkpoint.

    Raises
    ------
    RunFolderError
        If there is no interrupted fit of ``out``.
    """
    out = Path(out)
    staging = staging_folder(out)
    with run_lock(out):
        if not (staging / STATE).is_file():
            done = " (it is complete)" if (out / "report.json").is_file() else ""
            raise RunFolderError(f"{out}: no interrupted fit to resume{done}; expected {staging}.")
        _refuse_changed_data(out, staging)
        return run_staged(out, None, lambda folder, started: _climb(folder, progress, started, execution))


def _refuse_changed_data(out: Path, staging: Path) -> None:
    """Raise if the dataset an interrupted fit started on has changed files since (names or sizes)."""
    from automed.data.listing import dataset_listing, listing_change, listing_checksum

    meta = read_run(staging)
    data, recorded = Path(meta.data), meta.dataset_listing
    if recorded is None or not data.exists():  # older runs record none; a missing dataset is reopen's to report
        return
    current = dataset_listing(data)
    if listing_checksum(data, current)["sha256"] == recorded["sha256"]:
        return
    saved = staging / LISTING
    change = listing_change(json.loads(saved.read_text()), current) if saved.is_file() else None
    raise RunFolderError(f"{data}: {change or 'its files changed'} since the fit of {out} started, so resuming would "
                         "mix two datasets; put the data back as it was and resume, or fit again with --overwrite.")


def _set_up(recipe: Recipe, data: Path, folder: Path, progress: bool, cache_from: Path | None,
            replay: dict[str, Any] | None, execution: Execution) -> Reopened:
    """Check the rungs and the data, write the resolved recipe, fingerprint, splits and run.json;
    return them with the opened dataset."""
    from automed.data.listing import dataset_listing, listing_checksum
    from automed.environment import automed_commit, command_line, hardware, versions

    log.info("automed fit: %s -> %s", data, folder)
    storage = StudyStorage.resolve(execution.storage, folder, uuid.uuid4().hex[:12])
    storage.open()  # an unreachable database is refused before anything is fitted
    rung_classes = _check_rungs(recipe)
    prepared = get_task(recipe.task).prepare(recipe, data, progress)
    if recipe.cv == "by-site":  # every case needs a site, and two sites at least: refused before anything is fitted
        get_task(recipe.task).site_splits(prepared.opened, recipe)
    dataset, splits = prepared.dataset, prepared.splits
    if replay is not None:
        check_replayed_data(replay, prepared.fingerprint_record, data)
    recipe = recipe.replace(data_format=dataset.format, n_folds=splits.get("n_folds", recipe.n_folds))
    recipe.to_yaml(folder / "recipe.yaml")
    listing = dataset_listing(data)
    write_json(folder / LISTING, listing)
    write_json(folder / "fingerprint.json", prepared.fingerprint_record)
    write_json(folder / "splits.json", splits)
    record = RunRecord(
        str(data.resolve()), dataset.format, recipe.random_state,
        datetime.now(timezone.utc).isoformat(timespec="seconds"), hardware(), versions(), automed_commit(),
        command_line(), _n_jobs(recipe), listing_checksum(data, listing),
        {"budget_s": recipe.budget_s, "max_vram_bytes": recipe.max_vram_bytes, "min_gain": recipe.min_gain,
         "full_ladder": recipe.full_ladder, "cv": recipe.cv},
        _compute_peak() if any(c.trains_networks for c in rung_classes) else None,
        None if replay is None else replay["of"], storage.run_id, storage.public_url if storage.shared else None,
        execution.dask)
    write_run(folder, record)
    if replay is not None:
        write_json(folder / REPLAY, replay)
    if cache_from is not None and (cache_from / "cache").is_dir():
        shutil.copytree(cache_from / "cache", folder / "cache")
    write_json(folder / STATE, {"spent_s": 0.0})
    return Reopened(recipe, record, prepared.opened)


def _climb(folder: Path, progress: bool, started: Reopened | None, execution: Execution) -> None:
    """Fit every rung not yet done, in order, within the budget; stop climbing when gains stop.

    ``started`` is what a new fit's set-up returned; a resumed fit reopens it from the staging folder.
    """
    from automed.report import write_reports

    started = started or reopen_run(folder)
    recipe, meta, opened, task = started.recipe, started.record, started.opened, get_task(started.recipe.task)
    fingerprint = opened.fingerprint
    storage = StudyStorage.for_run(execution.storage, folder, meta)
    if storage.shared:
        log.info("studies in %s: `automed worker %s --storage URL` joins their searches", storage.public_url,
                 run_folder(folder))
    clock = Clock(folder / STATE)
    comparison = task.comparison_cases(recipe, opened)
    rung_classes = _check_rungs(recipe)
    done: list[RungResult] = []
    stopped: dict[str, str] = {}  # climb family -> why its climb stopped
    shortfalls: dict[str, float] = {}  # rung skipped for want of time -> the budget its share would have needed
    refits = sum(f for f in recipe.label_fractions if f < 1)
    if recipe.cv == "by-site":  # each site's refit trains on the other sites' share of the cases
        refits += len(task.site_splits(opened, recipe)) - 1
    budget = None if recipe.budget_s is None else recipe.budget_s / (1 + refits)  # the rest: the refits
    # a rung that cannot fit at all (no pretrained weights to be had) is skipped, and takes no share of the budget
    unavailable = {spec.name: cls(spec.params).unavailable() for spec, cls in zip(recipe.rungs, rung_classes)
                   if not (folder / "rungs" / spec.name / RESULT).is_file()}
    stack = ExitStack()
    try:
        cluster = stack.enter_context(dask_client(execution.dask, _n_jobs(recipe)))
        for i, (spec, cls) in enumerate(zip(recipe.rungs, rung_classes)):
            rung_folder = folder / "rungs" / spec.name
            if (rung_folder / RESULT).is_file():
                result = read_result(rung_folder)
                if result.done:
                    done.append(result)
                _note_stop(stopped, cls, result)
                continue
            if unavailable.get(spec.name):
                log.info("rung %s: skipped: %s", spec.name, unavailable[spec.name])
                _write_skipped(rung_folder, spec.name, unavailable[spec.name])
                continue
            if cls.climb_family() in stopped and not cls.combines_others:
                _write_skipped(rung_folder, spec.name, stopped[cls.climb_family()])
                continue
            remaining = None if budget is None else budget - clock.spent()
            if remaining is not None and remaining <= 0:
                _write_skipped(rung_folder, spec.name, "the time budget was used up by the rungs below it.")
                continue
            context = context_factory(folder, started, storage, progress, tuple(done), cluster)
            # the rungs still to fit that can fit this data (a 3D rung on 2D images cannot), this one first
            pending = [(spec, cls)] + [(s, c) for s, c in zip(recipe.rungs[i + 1:], rung_classes[i + 1:])
                                       if c.applies_to(fingerprint) and not unavailable.get(s.name)]
            reserved = 0.0 if remaining is None else _reserved(pending, context, folder / "rungs")
            rung = cls(spec.params)
            allotted = _allotment(remaining, [c for _, c in pending], reserved)
            if allotted is None:
                allotted = rung.default_allotment()
            result = _fit_rung(rung, recipe, context(folder=rung_folder, budget_s=allotted), done,
                               comparison, remaining, shortfalls)
            if result.done:
                done.append(result)
            _note_stop(stopped, cls, result)
        if not done and shortfalls:
            _refuse_budget(recipe.budget_s, shortfalls)
        seconds_left = None if recipe.budget_s is None else (lambda: recipe.budget_s - clock.spent())
        if recipe.label_fractions:
            learning_curve(folder, recipe, opened, done, _n_jobs(recipe), progress, storage, seconds_left)
        if recipe.cv == "by-site" and done:
            site_shift(folder, recipe, opened, done, _n_jobs(recipe), progress, storage, seconds_left)
        task.finish(folder, recipe, opened, tuple(done))
    finally:
        stack.close()
        clock.stop()
    # the memory-mapped training cases are a full copy of the data: kept for a resume, not after
    shutil.rmtree(folder / "cache" / VOLUME_CACHE, ignore_errors=True)
    meta = replace(meta, fit_seconds=clock.spent(), stopped_early="; ".join(stopped.values()) or None)
    write_run(folder, meta)
    write_json(folder / REALISED_PLAN, realised_plan(folder))
    write_reports(folder)
    log.info("done in %.1fs", meta.fit_seconds)


def _reserved(to_fit: list[tuple[Any, type]], context: Any, rungs_folder: Path) -> float:
    """Seconds held back for the rungs that combine others among ``to_fit`` ((spec, class) of the
    rungs still to fit, in order); ``context(folder=..., budget_s=...)`` builds their contexts."""
    total = 0.0
    for j, (spec, cls) in enumerate(to_fit):
        if cls.combines_others and j:
            pending = [s.name for s, c in to_fit[:j] if not c.combines_others]
            total += cls(spec.params).reserve_seconds(context(folder=rungs_folder / spec.name, budget_s=None), pending)
    return total


def _note_stop(stopped: dict[str, str], cls: type, result: RungResult) -> None:
    """Record in ``stopped`` that the climb of ``cls``'s family stops, when ``result`` says so."""
    if result.stops_climb:
        stopped.setdefault(cls.climb_family(), result.stops_climb)


def _allotment(remaining: float | None, to_fit: list[type], reserved: float) -> float | None:
    """Seconds allotted to the first of the rung classes ``to_fit`` (the rungs still to fit, in order).

    A rung that combines others gets all that is left; any other its ``cost_weight`` share
    (among the rungs to fit that combine none) of what is left after ``reserved``, the
    seconds held back for the rungs that combine others.
    """
    if remaining is None or to_fit[0].combines_others:
        return remaining
    weights = sum(c.cost_weight for c in to_fit if not c.combines_others)
    left = max(0.0, remaining - reserved)
    return left * to_fit[0].cost_weight / weights if weights else left


def _check_rungs(recipe: Recipe) -> list[type]:
    from automed.rungs import rung_class

    return [rung_class(spec.name, recipe.task) for spec in recipe.rungs]


def _refuse_budget(budget_s: float, shortfalls: dict[str, float]) -> None:
    """Raise: no rung finished, and ``shortfalls`` (rung -> the budget its share would have needed)
    were skipped for want of time. The fit is then removed, as a budget refused up front would be."""
    cheapest = min(shortfalls, key=shortfalls.get)
    needed = math.ceil(shortfalls[cheapest] / 60)
    raise RecipeError(f"The budget ({budget_s:.0f} s) is too small to fit any rung of this ladder: every rung was "
                      f"skipped (the log says why), and the cheapest, {cheapest}, would need a budget of about "
                      f"{needed}min for its share. Give a budget of at least {needed}min, fewer rungs "
                      f"(e.g. --rungs {cheapest}), or none.")


def _fit_rung(rung: Any, recipe: Recipe, context: FitContext, done: list[RungResult], comparison: list[str],
              budget_left_s: float | None, shortfalls: dict[str, float]) -> RungResult:
    """Plan, fit and judge one rung; write and return its ``result.json``.

    A rung skipped because its plan needs more than its allotment is added to ``shortfalls``
    with the budget (at this point of the fit) whose share would have held it.

    Raises
    ------
    RecipeError
        If no rung is done yet and this one, which is never cut short, is estimated to need
        more than the whole budget left (``budget_left_s``): nothing could be fitted within it.
    """
    from automed.ladder.cost import CostMeter

    _clear_unresumable(rung, context)
    context.folder.mkdir(parents=True, exist_ok=True)
    log.info("rung %s: planning (allotted %s)", rung.name,
             "no limit" if context.budget_s is None else f"{context.budget_s / 60:.1f} min")
    with CostMeter() as meter:
        # a replay pins the plan its source realised; a resumed fit follows the plan it made before the interruption
        plan = pinned_plan(context.folder) or saved_plan(context.folder) or rung.plan(context)
        save_plan(context.folder, plan)  # what the rung follows, for a resume and a replay
        least = plan.min_seconds if plan.min_seconds is not None else None if plan.skip_reason else plan.seconds
        if not done and None not in (least, budget_left_s) and least > budget_left_s:
            raise RecipeError(f"The budget ({budget_left_s:.0f} s left) is too small to fit anything: the {rung.name} "
                              f"rung needs at least {least:.0f} s on this data, shrunk as far as it goes "
                              f"({plan.note}). Give a budget of at least {math.ceil(least / 60)}min, or none.")
        if plan.skip_reason is None:
            log.info("rung %s: %s; estimated %s%s", rung.name, plan.note or "no estimate",
                     "?" if plan.seconds is None else f"{plan.seconds / 60:.1f} min",
                     "".join(f"; {s}" for s in plan.shrunk))
            with logged_once(f"rung {rung.name}") as library_warnings:
                outcome = rung.fit(context, plan)
    estimate = Estimate(plan.seconds, plan.train_memory_bytes, plan.note, context.budget_s)
    if plan.skip_reason is not None:
        log.info("rung %s: skipped: %s", rung.name, plan.skip_reason)
        if None not in (least, context.budget_s, budget_left_s) and least > context.budget_s > 0:
            shortfalls[rung.name] = least * budget_left_s / context.budget_s
        return _write_skipped(context.folder, rung.name, plan.skip_reason, estimate, plan.shrunk)
    summary = get_task(recipe.task).summarize(outcome, context, recipe)
    device = outcome.cost.get("device", "cpu")
    on_gpu = device.startswith("cuda")
    cost = Cost.from_dict({
        "fit_seconds": meter.seconds_, "peak_rss_bytes": meter.peak_rss_bytes_,
        "peak_vram_bytes": meter.peak_vram_bytes_, "n_params": outcome.n_params,
        "predict_seconds_per_case": outcome.predict_seconds_per_case, "device": device, "n_jobs": context.n_jobs,
        "est_train_vram_bytes": plan.train_memory_bytes,
        "core_hours": None if on_gpu else meter.seconds_ * context.n_jobs / 3600,
        "gpu_hours": meter.seconds_ / 3600 if on_gpu else None, **outcome.cost})
    trainings = outcome.details.get("trainings") or outcome.details.get("training") or []
    events = [e for t in trainings for e in t.get("events", [])]
    result = RungResult(
        rung.name, "done", None, summary["metric"], summary["per_class"],
        {k: v for k, v in summary.items() if k not in ("metric", "per_class")}, cost, estimate,
        (*plan.shrunk, *events), outcome.postprocessing,
        {**outcome.details, "library_warnings": library_warnings} if library_warnings else outcome.details,
        outcome.per_case,
        outcome.validation_per_case, checksums=weight_checksums(context.folder))
    result = write_result(context.folder,
                          replace(result, **judge(result, done, comparison, recipe, context.fingerprint)))
    metric = summary["metric"]
    ci = "n/a" if metric["ci_low"] is None else f"{metric['ci_low']:.4f}, {metric['ci_high']:.4f}"
    mean = "undefined" if metric["mean"] is None else f"{metric['mean']:.4f}"  # e.g. AUC on one class
    log.info("rung %s: %s %s [%s] in %.1fs, peak RSS %.2f GB", rung.name, metric["name"], mean, ci,
             meter.seconds_, meter.peak_rss_bytes_ / 1e9)
    return result


def _write_skipped(folder: Path, name: str, reason: str, estimate: Estimate | None = None,
                   shrunk: list[str] | None = None) -> RungResult:
    folder.mkdir(parents=True, exist_ok=True)
    return write_result(folder, RungResult(name, "skipped", reason, estimate=estimate, shrunk=tuple(shrunk or ())))


def _clear_unresumable(rung: Any, context: FitContext) -> None:
    """A rung that cannot continue an interrupted fit starts its fit again (its folder goes);
    its Optuna study stays, so finished trials are kept."""
    if getattr(rung, "resumable", False) or not context.folder.exists():
        return
    log.info("rung %s: restarting its interrupted fit (finished search trials are kept)", rung.name)
    shutil.rmtree(context.folder)


def _compute_peak() -> dict[str, Any]:
    """The training device's measured peak, logged and recorded in ``run.json``."""
    from automed.deep.inference import pick_device
    from automed.deep.throughput import compute_peak

    peak = compute_peak(pick_device())
    log.info("compute peak on %s with %d threads: %.0f GFLOP/s fp32 matrix product, %.0f GFLOP/s 3D convolution%s",
             peak["device"], peak["threads"], peak["matmul_fp32_gflops"], peak["conv3d_fp32_gflops"],
             "" if peak["matmul_bf16_gflops"] is None else f", {peak['matmul_bf16_gflops']:.0f} GFLOP/s bfloat16")
    return peak


def _n_jobs(recipe: Recipe) -> int:
    from automed.environment import resolve_n_jobs

    return resolve_n_jobs(recipe.n_jobs)
