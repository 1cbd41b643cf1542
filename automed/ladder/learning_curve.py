"""The learning curve: every finished rung refitted on fractions of the labelled cases."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from collections.abc import Callable
from typing import Any

import numpy as np

from automed.ladder.staging import write_json
from automed.recipe import Recipe
from automed.results import RESULT, Cost, RungResult, read_result, write_result
from automed.rungs.base import FitContext, Rung
from automed.tasks import Opened, get_task

__all__ = ["learning_curve"]

log = logging.getLogger("automed")


def learning_curve(folder: Path, recipe: Recipe, opened: Opened, done: list[RungResult], n_jobs: int,
                   progress: bool, seconds_left: Callable[[], float] | None = None) -> None:
    """Refit every finished rung on fractions of the labelled cases (:meth:`Task.label_subset`: stratified
    development cases for classification, fold 0's training cases for segmentation), judged on the cases the
    full fit was; write ``learning_curve.json``.

    Under a budget (``seconds_left``: the seconds the fit has left), the refits still to run share what is left in
    proportion to the rung's own fit time times the fraction. Each refit keeps only its
    ``result.json`` (in ``rungs/<rung>/fractions/<fraction>/``: the same record as a rung's, with
    ``fraction`` and ``n_dev``, and the per-case predictions that rungs combining others read);
    finished refits are kept on resume.
    """
    from automed.rungs import rung_class

    task, dataset, summary = get_task(recipe.task), opened.dataset, opened.fingerprint
    specs = {s.name: s for s in recipe.rungs}
    pending = {(r.name, f): r.cost.fit_seconds * f for f in recipe.label_fractions if f < 1 for r in done}
    curve: dict[str, list[dict[str, Any]]] = {r.name: [] for r in done}
    for fraction in recipe.label_fractions:
        subset = task.label_subset(opened, fraction, recipe)
        refitted: list[RungResult] = []
        for rung in done:
            if fraction >= 1:
                curve[rung.name].append({"fraction": 1.0, "n_dev": len(subset["dev"]), "metric": rung.comparison["metric"]})
                continue
            out = folder / "rungs" / rung.name / "fractions" / f"{fraction:g}"
            if not (out / RESULT).is_file():
                shutil.rmtree(out, ignore_errors=True)
                log.info("learning curve: %s on %.0f%% of the labelled cases", rung.name, 100 * fraction)
                allotted = None if seconds_left is None else (
                    max(0.0, seconds_left()) * pending[rung.name, fraction] / sum(pending.values()))
                context = FitContext(dataset, summary, subset["folds"], out, recipe.random_state, n_jobs,
                                     allotted, f"sqlite:///{folder / f'optuna-fraction-{fraction:g}.db'}", progress,
                                     splits=subset, cache_folder=folder / "cache", metric=recipe.metric,
                                     ordinal=recipe.ordinal, finished=tuple(refitted),
                                     include_background=recipe.include_background, cv=recipe.cv)
                out.mkdir(parents=True)
                result = _refit(rung_class(rung.name, recipe.task)(specs[rung.name].params), context, recipe,
                                {"fraction": fraction, "n_dev": len(subset["dev"])})
                for item in out.iterdir():  # keep the score and predictions, not the models
                    if item.is_dir():
                        shutil.rmtree(item)
                    else:
                        item.unlink()
                write_result(out, result)
            pending.pop((rung.name, fraction), None)
            entry = read_result(out)
            point = {"fraction": entry.summary["fraction"], "n_dev": entry.summary["n_dev"]}
            if entry.done:
                refitted.append(entry)
                point["metric"] = entry.metric
            else:
                point["skipped"] = entry.reason
            curve[rung.name].append(point)
    write_json(folder / "learning_curve.json", {"metric": recipe.metric, "fractions": list(recipe.label_fractions),
                                                 "cases": done[0].comparison["cases"] if done else None,
                                                 "rungs": curve, "doubling": {name: doubling_estimate(points,
                                                                                                      recipe.random_state)
                                                                              for name, points in curve.items()}})


def doubling_estimate(points: list[dict[str, Any]], random_state: int = 0,
                      n_draws: int = 2000) -> dict[str, Any] | None:
    """What doubling the labelled cases would gain, from a power law fitted to the curve's points.

    The shortfall ``1 - metric`` is taken to fall as ``a * n ** -b`` (n: labelled cases), the usual shape of a
    learning curve, fitted by least squares in log-log; the gain is the fit at ``2 n`` less the metric at the
    largest ``n``. Its 95% interval comes from refitting to points drawn around each measured one with the spread
    its own CI gives (a normal approximation). None with fewer than three scored points.
    """
    scored = [(p["n_dev"], p["metric"]) for p in points if p.get("metric") and p["metric"].get("mean") is not None]
    if len(scored) < 3 or any(m["mean"] >= 1 for _, m in scored):
        return None
    n = np.log([k for k, _ in scored])
    mean = np.array([m["mean"] for _, m in scored])
    spread = np.array([(m["ci_high"] - m["ci_low"]) / 3.92 if m.get("ci_low") is not None else 0.0
                       for _, m in scored])
    largest = int(np.argmax(n))

    def gain(values: np.ndarray) -> tuple[float, float]:
        slope, intercept = np.polyfit(n, np.log(np.clip(1 - values, 1e-6, None)), 1)
        at_double = 1 - np.exp(intercept + slope * (n[largest] + np.log(2)))
        return float(at_double - values[largest]), float(-slope)

    point, exponent = gain(mean)
    rng = np.random.default_rng(random_state)
    draws = [gain(np.clip(mean + rng.normal(0, spread), 0, 1 - 1e-6))[0] for _ in range(n_draws)]
    low, high = np.percentile(draws, [2.5, 97.5])
    return {"n": int(np.exp(n[largest]).round()), "gain": point, "ci_low": float(low), "ci_high": float(high),
            "exponent": exponent, "n_points": len(scored)}


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
