"""The one place with side effects: build a run folder from a recipe and a dataset.

A fit writes into a hidden sibling folder and renames it into place only when
everything succeeded, so a run folder is either complete or absent.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
import uuid
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

from automed.errors import AutomedError, RecipeError, RunFolderError
from automed.ladder.outputs import check_output_folder, refuse_overlap
from automed.recipe import Recipe
from automed.rungs.base import FitContext

__all__ = ["fit_run", "resume_run"]

log = logging.getLogger("automed")
STATE = "state.json"  # in the staging folder once set-up is written: the fit can be resumed


def fit_run(recipe: Recipe, data: str | Path, out: str | Path, overwrite: bool = False, progress: bool = True) -> Path:
    """Climb the ladder of ``recipe`` on the dataset at ``data`` and write the run folder ``out``.

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
    refuse_overlap(out, {"the dataset": data})
    check_output_folder(out, overwrite, "run")
    staging = _staging(out)
    if staging.exists():
        if not overwrite:
            raise RunFolderError(f"{staging}: an interrupted fit of {out} is there; continue it with "
                                 f"`automed fit --resume {out}` or pass --overwrite to start again.")
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    cache_from = out if out.is_dir() else None
    return _run(staging, out, progress, setup=lambda: _set_up(recipe, data, staging, progress, cache_from))


def resume_run(out: str | Path, progress: bool = True) -> Path:
    """Continue the interrupted fit of ``out``: finished rungs and Optuna trials are kept,
    an interrupted training continues from its last checkpoint.

    Raises
    ------
    RunFolderError
        If there is no interrupted fit of ``out``.
    """
    out = Path(out)
    staging = _staging(out)
    if not (staging / STATE).is_file():
        done = " (it is complete)" if (out / "report.json").is_file() else ""
        raise RunFolderError(f"{out}: no interrupted fit to resume{done}; expected {staging}.")
    return _run(staging, out, progress, setup=None)


def _staging(out: Path) -> Path:
    return out.parent / f".{out.name}.partial"


def _run(staging: Path, out: Path, progress: bool, setup: Any) -> Path:
    handler = _attach_log(staging / "automed.log")
    try:
        if setup is not None:
            setup()
        else:
            log.info("automed fit --resume %s", out)
        _climb(staging, progress)
    except BaseException as exc:
        _detach_log(handler)
        if (staging / STATE).is_file() and not isinstance(exc, AutomedError):
            log.error("The fit stopped (%s); its progress is kept in %s. %s: automed fit --resume %s "
                      "(or start again with --overwrite).", _stop_reason(exc), staging,
                      "Continue it with" if _resumable(exc) else "Once the cause is fixed, continue it with", out)
        else:
            if (staging / STATE).is_file():
                log.error("The fit stopped on a problem with its data or recipe; resuming would stop the same "
                          "way, so %s was removed. Fix the problem and fit again.", staging)
            shutil.rmtree(staging, ignore_errors=True)
        raise
    _detach_log(handler)
    (staging / STATE).unlink()
    _swap_into_place(staging, out)
    return out


def _resumable(exc: BaseException) -> bool:
    """Whether the stop came from outside the fit (an interruption, memory, disk), so resuming can help."""
    return isinstance(exc, (KeyboardInterrupt, SystemExit, MemoryError, OSError)) or "OutOfMemory" in type(exc).__name__


def _stop_reason(exc: BaseException) -> str:
    if isinstance(exc, (KeyboardInterrupt, SystemExit)):
        return "interrupted"
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def _set_up(recipe: Recipe, data: Path, folder: Path, progress: bool, cache_from: Path | None) -> None:
    """Check the rungs and the data, write the resolved recipe, fingerprint, splits and run.json."""
    from automed.environment import hardware, versions

    log.info("automed fit: %s -> %s", data, folder)
    _check_rungs(recipe)
    prepare = _prepare_segmentation if recipe.task == "segmentation" else _prepare_classification
    dataset, _, summary, splits, _ = prepare(recipe, data, progress)
    recipe = recipe.replace(data_format=dataset.format)
    recipe.to_yaml(folder / "recipe.yaml")
    _write_json(folder / "fingerprint.json", summary)
    _write_json(folder / "splits.json", splits)
    _write_json(folder / "run.json", {
        "data": str(data.resolve()), "format": dataset.format, "seed": recipe.random_state,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "hardware": hardware(), "versions": versions(),
        "constraints": {"budget_s": recipe.budget_s, "max_vram_bytes": recipe.max_vram_bytes,
                        "min_gain": recipe.min_gain, "full_ladder": recipe.full_ladder, "cv": recipe.cv},
    })
    if cache_from is not None and (cache_from / "cache").is_dir():
        shutil.copytree(cache_from / "cache", folder / "cache")
    _write_json(folder / STATE, {"spent_s": 0.0})


def _climb(folder: Path, progress: bool) -> None:
    """Fit every rung not yet done, in order, within the budget; stop climbing when gains stop."""
    from automed.report import write_reports

    recipe = Recipe.from_yaml(folder / "recipe.yaml")
    meta = json.loads((folder / "run.json").read_text())
    dataset, fingerprint, splits = _reopen(recipe, Path(meta["data"]), folder)
    clock = _Clock(folder / STATE)
    classes = [] if recipe.task == "classification" else [
        c for c in sorted(fingerprint.classes) if recipe.include_background or c != 0]
    comparison = _comparison_cases(recipe, splits, dataset)
    rung_classes = _check_rungs(recipe)
    done: list[dict[str, Any]] = []
    stopped: str | None = None
    refits = sum(f for f in recipe.label_fractions if f < 1)
    budget = None if recipe.budget_s is None else recipe.budget_s / (1 + refits)  # the rest: learning-curve refits
    try:
        for i, (spec, cls) in enumerate(zip(recipe.rungs, rung_classes)):
            rung_folder = folder / "rungs" / spec.name
            if (rung_folder / "result.json").is_file():
                result = json.loads((rung_folder / "result.json").read_text())
                if result["status"] == "done":
                    done.append(result)
                stopped = stopped or result.get("stops_climb")
                continue
            if stopped is not None and not cls.combines_others:
                _write_skipped(rung_folder, spec.name, stopped)
                continue
            remaining = None if budget is None else budget - clock.spent()
            if remaining is not None and remaining <= 0:
                _write_skipped(rung_folder, spec.name, "the time budget was used up by the rungs below it.")
                continue
            context = partial(FitContext, dataset, fingerprint, splits["folds"], random_state=recipe.random_state,
                              n_jobs=_n_jobs(recipe), optuna_storage=f"sqlite:///{folder / 'optuna.db'}",
                              progress=progress, splits=splits, cache_folder=folder / "cache", metric=recipe.metric,
                              include_background=recipe.include_background, cv=recipe.cv,
                              max_vram_bytes=recipe.max_vram_bytes, finished=tuple(done))
            reserved = 0.0 if remaining is None else _reserved(list(zip(recipe.rungs[i:], rung_classes[i:])), context,
                                                               folder / "rungs")
            allotted = _allotment(remaining, rung_classes[i:], reserved)
            result = _fit_rung(cls(spec.params), recipe, context(folder=rung_folder, budget_s=allotted), done, classes,
                               comparison, remaining)
            if result["status"] == "done":
                done.append(result)
            stopped = stopped or result.get("stops_climb")
        if recipe.label_fractions:
            _learning_curve(folder, recipe, dataset, fingerprint, splits, done, progress)
    finally:
        clock.stop()
    meta["fit_seconds"] = clock.spent()
    meta["stopped_early"] = stopped
    _write_json(folder / "run.json", meta)
    write_reports(folder)
    log.info("done in %.1fs", meta["fit_seconds"])


def _reserved(to_fit: list[tuple[Any, type]], context: Any, rungs_folder: Path) -> float:
    """Seconds held back for the rungs that combine others among ``to_fit`` ((spec, class) of the
    rungs still to fit, in order); ``context(folder=..., budget_s=...)`` builds their contexts."""
    total = 0.0
    for j, (spec, cls) in enumerate(to_fit):
        if cls.combines_others and j:
            pending = [s.name for s, c in to_fit[:j] if not c.combines_others]
            total += cls(spec.params).reserve_seconds(context(folder=rungs_folder / spec.name, budget_s=None), pending)
    return total


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


def _learning_curve(folder: Path, recipe: Recipe, dataset: Any, summary: Any, splits: dict[str, Any],
                    done: list[dict[str, Any]], progress: bool) -> None:
    """Refit every finished rung on stratified fractions of the development cases; write ``learning_curve.json``.

    Each refit is allotted the rung's own fit time times the fraction and keeps only its
    ``result.json`` (in ``rungs/<rung>/fractions/<fraction>/``, with its per-case predictions for
    rungs that combine others); finished refits are kept on resume.
    """
    from automed.data.splits import label_subset
    from automed.rungs import rung_class

    labels = {c.case_id: c.label for c in dataset.cases}
    specs = {s.name: s for s in recipe.rungs}
    curve: dict[str, list[dict[str, Any]]] = {r["name"]: [] for r in done}
    for fraction in recipe.label_fractions:
        subset = label_subset(splits, labels, fraction, recipe.n_folds, recipe.random_state)
        refitted: list[dict[str, Any]] = []
        for rung in done:
            if fraction >= 1:
                curve[rung["name"]].append({"fraction": 1.0, "n_dev": len(splits["dev"]), "metric": rung["metric"]})
                continue
            out = folder / "rungs" / rung["name"] / "fractions" / f"{fraction:g}"
            if not (out / "result.json").is_file():
                shutil.rmtree(out, ignore_errors=True)
                log.info("learning curve: %s on %.0f%% of the labelled cases", rung["name"], 100 * fraction)
                allotted = None if recipe.budget_s is None else rung["cost"]["fit_seconds"] * fraction
                context = FitContext(dataset, summary, subset["folds"], out, recipe.random_state, _n_jobs(recipe),
                                     allotted, f"sqlite:///{folder / f'optuna-fraction-{fraction:g}.db'}", progress,
                                     splits=subset, cache_folder=folder / "cache", metric=recipe.metric,
                                     finished=tuple(refitted))
                instance = rung_class(rung["name"], recipe.task)(specs[rung["name"]].params)
                out.mkdir(parents=True)
                plan = instance.plan(context)
                entry: dict[str, Any] = {"name": rung["name"], "fraction": fraction, "n_dev": len(subset["dev"])}
                if plan.skip_reason is not None:
                    entry["skipped"] = plan.skip_reason
                else:
                    outcome = instance.fit(context, plan)
                    entry.update(metric=outcome.summary["metric"], per_case=outcome.per_case,
                                 validation_per_case=outcome.validation_per_case, cost=None)
                for item in out.iterdir():  # keep the score and predictions, not the models
                    if item.is_dir():
                        shutil.rmtree(item)
                    else:
                        item.unlink()
                _write_json(out / "result.json", entry)
            entry = json.loads((out / "result.json").read_text())
            if "metric" in entry:
                refitted.append(entry)
            curve[rung["name"]].append({k: entry[k] for k in ("fraction", "n_dev", "metric", "skipped") if k in entry})
    _write_json(folder / "learning_curve.json", {"metric": recipe.metric, "fractions": list(recipe.label_fractions),
                                                 "cases": "held-out test cases", "rungs": curve})


def _reopen(recipe: Recipe, data: Path, folder: Path) -> tuple[Any, Any, dict[str, Any]]:
    """The dataset, its fingerprint and the splits recorded at set-up."""
    splits = json.loads((folder / "splits.json").read_text())
    summary = json.loads((folder / "fingerprint.json").read_text())
    if recipe.task == "classification":
        from automed.data.classification import open_classification

        return open_classification(data, recipe.data_format), summary, splits
    from automed.data.dataset import open_dataset
    from automed.data.fingerprint import Fingerprint

    return open_dataset(data, recipe.data_format), Fingerprint.from_dict(summary), splits


def _comparison_cases(recipe: Recipe, splits: dict[str, Any], dataset: Any) -> list[str]:
    """The cases every rung is judged on."""
    if recipe.task == "classification":
        return list(splits["test"])
    if recipe.cv == "full":
        return sorted(c.case_id for c in dataset.cases)
    return list(splits["folds"][0]["val"])


class _Clock:
    """Seconds the fit has spent, across resumes; saved every few seconds to ``state.json``."""

    def __init__(self, path: Path, interval_s: float = 5.0) -> None:
        import threading

        self.path = path
        self._offset = json.loads(path.read_text())["spent_s"]
        self._start = time.monotonic()
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._beat, args=(interval_s,), daemon=True)
        self._thread.start()

    def spent(self) -> float:
        return self._offset + time.monotonic() - self._start

    def _save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"spent_s": self.spent()}))
        tmp.replace(self.path)

    def _beat(self, interval_s: float) -> None:
        while not self._halt.wait(interval_s):
            self._save()

    def stop(self) -> None:
        self._halt.set()
        self._thread.join()
        self._save()


def _prepare_segmentation(recipe: Recipe, data: Path, progress: bool) -> tuple:
    from automed.data.dataset import open_dataset
    from automed.data.fingerprint import compute_fingerprint
    from automed.data.splits import make_folds

    dataset = open_dataset(data, recipe.data_format)
    fingerprint = compute_fingerprint(dataset, recipe.random_state, progress)
    log.info("dataset: %d cases, %dD, classes %s, format %s", fingerprint.n_cases, fingerprint.dims,
             fingerprint.classes, dataset.format)
    folds = make_folds([c.case_id for c in dataset.cases], [c.group for c in dataset.cases],
                       recipe.n_folds, recipe.random_state)
    splits = {"kind": "cv", "n_folds": recipe.n_folds, "random_state": recipe.random_state,
              "grouped": any(c.group for c in dataset.cases), "folds": folds}
    return dataset, fingerprint, fingerprint.to_dict(), splits, folds


def _prepare_classification(recipe: Recipe, data: Path, progress: bool) -> tuple:
    from automed.data.classification import open_classification, summarize
    from automed.data.splits import holdout_split, stratified_folds

    dataset = open_classification(data, recipe.data_format)
    summary = summarize(dataset)
    log.info("dataset: %d images, %dD, classes %s, format %s", summary["n_cases"], summary["dims"],
             list(dataset.classes), dataset.format)
    if dataset.official_split:
        by_split = {s: sorted(c.case_id for c in dataset.cases if c.split == s) for s in ("train", "val", "test")}
        dev = by_split["train"] + by_split["val"]
        labels = {c.case_id: c.label for c in dataset.cases}
        folds = stratified_folds(dev, [labels[c] for c in dev], dev, recipe.n_folds, recipe.random_state)
        splits = {"kind": "official", **by_split, "dev": sorted(dev), "folds": folds}
    else:
        splits = holdout_split([c.case_id for c in dataset.cases], [c.label for c in dataset.cases],
                               [c.group for c in dataset.cases], recipe.test_fraction, recipe.n_folds,
                               recipe.random_state)
    return dataset, summary, summary, splits, splits["folds"]


def _check_rungs(recipe: Recipe) -> list[type]:
    from automed.rungs import rung_class

    return [rung_class(spec.name, recipe.task) for spec in recipe.rungs]


def _fit_rung(rung: Any, recipe: Recipe, context: FitContext, done: list[dict[str, Any]], classes: list[int],
              comparison: list[str], budget_left_s: float | None) -> dict[str, Any]:
    """Plan, fit and judge one rung; write and return its ``result.json``.

    Raises
    ------
    RecipeError
        If no rung is done yet and this one, which is never cut short, is estimated to need
        more than the whole budget left (``budget_left_s``): nothing could be fitted within it.
    """
    from automed.ladder.cost import CostMeter
    from automed.report.tables import summarize_segmentation

    _clear_unresumable(rung, context)
    context.folder.mkdir(parents=True, exist_ok=True)
    log.info("rung %s: planning (allotted %s)", rung.name,
             "no limit" if context.budget_s is None else f"{context.budget_s / 60:.1f} min")
    with CostMeter() as meter:
        plan = rung.plan(context)
        if not done and plan.skip_reason is None and None not in (plan.seconds, budget_left_s) \
                and plan.seconds > budget_left_s:
            raise RecipeError(f"The budget ({budget_left_s:.0f} s left) is too small to fit anything: the {rung.name} "
                              f"rung, which is never cut short, is estimated at {plan.seconds:.0f} s on this data "
                              f"({plan.note}). Give a budget of at least {math.ceil(plan.seconds / 60)}min, or none.")
        if plan.skip_reason is None:
            log.info("rung %s: %s; estimated %s%s", rung.name, plan.note or "no estimate",
                     "?" if plan.seconds is None else f"{plan.seconds / 60:.1f} min",
                     "".join(f"; {s}" for s in plan.shrunk))
            outcome = rung.fit(context, plan)
    estimate = {"seconds": plan.seconds, "train_vram_bytes": plan.train_memory_bytes, "note": plan.note,
                "allotted_seconds": context.budget_s}
    if plan.skip_reason is not None:
        log.info("rung %s: skipped: %s", rung.name, plan.skip_reason)
        return _write_skipped(context.folder, rung.name, plan.skip_reason, estimate, plan.shrunk)
    summary = outcome.summary
    if summary is None:
        metric, per_class = summarize_segmentation(outcome.per_case, context.fingerprint.classes,
                                                   recipe.include_background, recipe.random_state)
        summary = {"metric": metric, "per_class": per_class}
    device = outcome.cost.get("device", "cpu")
    cost = {"fit_seconds": meter.seconds_, "peak_rss_bytes": meter.peak_rss_bytes_,
            "peak_vram_bytes": meter.peak_vram_bytes_, "n_params": outcome.n_params,
            "predict_seconds_per_case": outcome.predict_seconds_per_case, "device": device,
            "n_jobs": context.n_jobs, "est_train_vram_bytes": plan.train_memory_bytes,
            "core_hours": None if device.startswith("cuda") else meter.seconds_ * context.n_jobs / 3600,
            "gpu_hours": meter.seconds_ / 3600 if device.startswith("cuda") else None,
            "search_seconds": None, "final_fit_seconds": None, "n_trials": None, "n_trials_pruned": None,
            **outcome.cost}
    result = {
        "name": rung.name, "status": "done", "reason": None, **summary, "cost": cost, "estimate": estimate,
        "shrunk": plan.shrunk + [e for t in outcome.details.get("trainings", []) for e in t.get("events", [])],
        "postprocessing": outcome.postprocessing, "details": outcome.details,
        "per_case": outcome.per_case, "validation_per_case": outcome.validation_per_case,
    }
    _judge(result, done, classes, comparison, recipe)
    _write_json(context.folder / "result.json", result)
    metric = summary["metric"]
    ci = "n/a" if metric["ci_low"] is None else f"{metric['ci_low']:.4f}, {metric['ci_high']:.4f}"
    log.info("rung %s: %s %.4f [%s] in %.1fs, peak RSS %.2f GB", rung.name, metric["name"], metric["mean"], ci,
             meter.seconds_, meter.peak_rss_bytes_ / 1e9)
    return result


def _judge(result: dict[str, Any], done: list[dict[str, Any]], classes: list[int], comparison: list[str],
           recipe: Recipe) -> None:
    """Add the comparison metric, the paired gains and, when gains stopped, why climbing stops."""
    if recipe.task == "classification":
        result["comparison"] = {"metric": result["metric"], "cases": "held-out test cases", "n": result["metric"]["n"]}
        gain_over = partial(_classification_gain, result=result, recipe=recipe)
    else:
        from automed.metrics import summarize
        from automed.report.tables import case_scores

        shared = set(comparison)
        scores = {k: v for k, v in case_scores(result["per_case"], classes).items() if k in shared}
        metric = {"name": result["metric"]["name"], "classes": result["metric"]["classes"],
                  **summarize(list(scores.values()), recipe.random_state)}
        cases = "every case (all folds)" if recipe.cv == "full" else "validation cases of fold 0"
        result["comparison"] = {"metric": metric, "cases": cases, "n": len(scores)}
        gain_over = partial(_segmentation_gain, scores=scores, classes=classes, recipe=recipe)
    result["gain_vs_baseline"] = result["gain_vs_prev"] = None
    if not done:
        return
    best = max(done, key=lambda r: r["comparison"]["metric"]["mean"])
    result["gain_vs_baseline"] = gain_over(done[0])
    result["gain_vs_prev"] = gain = gain_over(best)
    reference = next((r for r in done if r["name"] == result["details"].get("compare_with")), None)
    if reference is not None:  # e.g. ssl beside the same network trained from scratch
        result["gain_vs_reference"] = gain_over(reference)
    if (not recipe.full_ladder and gain is not None and gain["ci_high"] is not None
            and gain["ci_high"] < recipe.min_gain):
        result["stops_climb"] = (f"climbing stopped after {result['name']}: its gain over {best['name']} was "
                                 f"{gain['mean']:+.3f} [95% CI {gain['ci_low']:+.3f}, {gain['ci_high']:+.3f}], "
                                 f"below min_gain {recipe.min_gain} with 95% confidence (--full-ladder climbs on).")
        log.info(result["stops_climb"])


def _segmentation_gain(base: dict[str, Any], scores: dict[str, float], classes: list[int],
                       recipe: Recipe) -> dict[str, Any] | None:
    from automed.report.tables import case_scores, paired_gain

    gain = paired_gain(case_scores(base["per_case"], classes), scores, recipe.random_state)
    return None if gain is None else {"vs": base["name"], **gain}


def _classification_gain(base: dict[str, Any], result: dict[str, Any], recipe: Recipe) -> dict[str, Any] | None:
    """Paired bootstrap difference of the recipe's metric on the test cases both rungs scored."""
    import numpy as np

    from automed.metrics import paired_classification_gain

    theirs = {c["case_id"]: c for c in base["per_case"]}
    mine = [c for c in result["per_case"] if c["case_id"] in theirs]
    if not mine:
        return None
    classes = list(result["per_class"])  # class names in the dataset's order
    y = np.array([classes.index(c["label"]) for c in mine])
    gain = paired_classification_gain(y, np.array([theirs[c["case_id"]]["proba"] for c in mine]),
                                      np.array([c["proba"] for c in mine]), base.get("threshold"),
                                      result.get("threshold"), recipe.metric, recipe.random_state)
    return {"vs": base["name"], **gain}


def _write_skipped(folder: Path, name: str, reason: str, estimate: dict[str, Any] | None = None,
                   shrunk: list[str] | None = None) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    result = {"name": name, "status": "skipped", "reason": reason, "metric": None, "per_class": None,
              "comparison": None, "gain_vs_baseline": None, "gain_vs_prev": None, "cost": None,
              "estimate": estimate, "shrunk": shrunk or [], "postprocessing": None, "per_case": []}
    _write_json(folder / "result.json", result)
    return result


def _clear_unresumable(rung: Any, context: FitContext) -> None:
    """A rung that cannot continue an interrupted fit starts its fit again (its folder goes);
    its Optuna study stays, so finished trials are kept."""
    if getattr(rung, "resumable", False) or not context.folder.exists():
        return
    log.info("rung %s: restarting its interrupted fit (finished search trials are kept)", rung.name)
    shutil.rmtree(context.folder)


def _n_jobs(recipe: Recipe) -> int:
    return recipe.n_jobs if recipe.n_jobs > 0 else _n_cores()


def _n_cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(_finite(value), indent=2, allow_nan=False, default=_jsonable))


def _finite(value: Any) -> Any:
    """NaN/Inf (e.g. an undefined HD95) become JSON null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _jsonable(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _attach_log(path: Path) -> logging.Handler:
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    return handler


def _detach_log(handler: logging.Handler) -> None:
    log.removeHandler(handler)
    handler.close()


def _swap_into_place(staging: Path, out: Path) -> None:
    """Rename the finished staging folder to ``out``, replacing an old run only now."""
    if out.exists():
        trash = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
        out.rename(trash)
        staging.rename(out)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        staging.rename(out)
