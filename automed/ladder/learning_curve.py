"""The learning curve: every finished rung refitted on fractions of the labelled cases."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

from automed.ladder.staging import write_json
from automed.recipe import Recipe
from automed.results import RESULT, Cost, RungResult, read_result, write_result
from automed.rungs.base import FitContext, Rung
from automed.tasks import get_task

__all__ = ["learning_curve"]

log = logging.getLogger("automed")


def learning_curve(folder: Path, recipe: Recipe, dataset: Any, summary: Any, splits: dict[str, Any],
                   done: list[RungResult], n_jobs: int, progress: bool) -> None:
    """Refit every finished rung on stratified fractions of the development cases; write ``learning_curve.json``.

    Each refit is allotted the rung's own fit time times the fraction and keeps only its
    ``result.json`` (in ``rungs/<rung>/fractions/<fraction>/``: the same record as a rung's, with
    ``fraction`` and ``n_dev``, and the per-case predictions that rungs combining others read);
    finished refits are kept on resume.
    """
    from automed.data.splits import label_subset
    from automed.rungs import rung_class

    labels = {c.case_id: c.label for c in dataset.cases}
    specs = {s.name: s for s in recipe.rungs}
    curve: dict[str, list[dict[str, Any]]] = {r.name: [] for r in done}
    for fraction in recipe.label_fractions:
        subset = label_subset(splits, labels, fraction, recipe.n_folds, recipe.random_state)
        refitted: list[RungResult] = []
        for rung in done:
            if fraction >= 1:
                curve[rung.name].append({"fraction": 1.0, "n_dev": len(splits["dev"]), "metric": rung.metric})
                continue
            out = folder / "rungs" / rung.name / "fractions" / f"{fraction:g}"
            if not (out / RESULT).is_file():
                shutil.rmtree(out, ignore_errors=True)
                log.info("learning curve: %s on %.0f%% of the labelled cases", rung.name, 100 * fraction)
                allotted = None if recipe.budget_s is None else rung.cost.fit_seconds * fraction
                context = FitContext(dataset, summary, subset["folds"], out, recipe.random_state, n_jobs,
                                     allotted, f"sqlite:///{folder / f'optuna-fraction-{fraction:g}.db'}", progress,
                                     splits=subset, cache_folder=folder / "cache", metric=recipe.metric,
                                     ordinal=recipe.ordinal, finished=tuple(refitted))
                out.mkdir(parents=True)
                result = _refit(rung_class(rung.name, recipe.task)(specs[rung.name].params), context, recipe,
                                {"fraction": fraction, "n_dev": len(subset["dev"])})
                for item in out.iterdir():  # keep the score and predictions, not the models
                    if item.is_dir():
                        shutil.rmtree(item)
                    else:
                        item.unlink()
                write_result(out, result)
            entry = read_result(out)
            point = {"fraction": entry.summary["fraction"], "n_dev": entry.summary["n_dev"]}
            if entry.done:
                refitted.append(entry)
                point["metric"] = entry.metric
            else:
                point["skipped"] = entry.reason
            curve[rung.name].append(point)
    write_json(folder / "learning_curve.json", {"metric": recipe.metric, "fractions": list(recipe.label_fractions),
                                                 "cases": "held-out test cases", "rungs": curve})


def _refit(rung: Rung, context: FitContext, recipe: Recipe, where: dict[str, Any]) -> RungResult:
    """Plan and fit ``rung`` on a fraction of the labels (``where``: the fraction and its development cases) as a
    :class:`~automed.results.RungResult` like any rung's, skipped where its plan says so."""
    plan = rung.plan(context)
    if plan.skip_reason is not None:
        return RungResult(rung.name, "skipped", plan.skip_reason, summary=where)
    start = time.perf_counter()
    outcome = rung.fit(context, plan)
    summary = get_task(recipe.task).summarize(outcome, context, recipe)
    extra = {k: v for k, v in summary.items() if k not in ("metric", "per_class")}
    return RungResult(rung.name, "done", None, summary["metric"], summary["per_class"], {**extra, **where},
                      Cost(time.perf_counter() - start), per_case=outcome.per_case,
                      validation_per_case=outcome.validation_per_case)
