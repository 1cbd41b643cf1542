"""Finished rungs fitted again on other splits of the same cases (fewer labels, other sites), each refit judged as
any rung is and kept as a ``result.json`` of its own."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from automed.cluster.storage import StudyStorage
from automed.recipe import Recipe
from automed.results import RESULT, Cost, RungResult, read_result, write_result
from automed.rungs.base import FitContext, Rung
from automed.tasks import Opened, get_task

__all__ = ["Variant", "refit_rungs"]

log = logging.getLogger("automed")


@dataclass(frozen=True)
class Variant:
    """One way of fitting the rungs again.

    Attributes
    ----------
    key : str
        Its name in paths (``rungs/<rung>/<kind>/<key>/``) and records.
    splits : dict
        The splits the refits fit and are judged on (``folds`` and ``dev``, as a fit's ``splits.json``).
    where : dict
        What each refit's result records about the variant (e.g. ``fraction`` and ``n_dev``).
    weight : float
        The variant's share of a rung's fit time: under a budget, the refits still to run share what is left in
        proportion to the rung's own fit time times it.
    description : str
        How the log names it ("on 25% of the labelled cases").
    """

    key: str
    splits: dict[str, Any]
    where: dict[str, Any] = field(default_factory=dict)
    weight: float = 1.0
    description: str = ""


def refit_rungs(folder: Path, recipe: Recipe, opened: Opened, done: list[RungResult], kind: str,
                variants: list[Variant], n_jobs: int, progress: bool, storage: StudyStorage,
                seconds_left: Callable[[], float] | None = None) -> dict[tuple[str, str], RungResult]:
    """Refit every rung in ``done`` for every variant, in the variants' order; return each refit's result by
    ``(rung, variant key)``.

    Each refit keeps only its ``result.json`` (in ``rungs/<rung>/<kind>/<key>/``: the same record as a rung's, with
    the variant's ``where``, and the per-case predictions that rungs combining others read); a refit that finished
    is read back, not fitted again (a resumed fit). A rung whose plan does not fit its share is a skipped result
    with the reason.
    """
    from automed.rungs import rung_class

    specs = {s.name: s for s in recipe.rungs}
    pending = {(r.name, v.key): r.cost.fit_seconds * v.weight for v in variants for r in done}
    results: dict[tuple[str, str], RungResult] = {}
    for variant in variants:
        refitted: list[RungResult] = []
        for rung in done:
            out = folder / "rungs" / rung.name / kind / variant.key
            if not (out / RESULT).is_file():
                shutil.rmtree(out, ignore_errors=True)
                log.info("%s: %s %s", kind, rung.name, variant.description or variant.key)
                allotted = None if seconds_left is None else (
                    max(0.0, seconds_left()) * pending[rung.name, variant.key] / sum(pending.values()))
                context = FitContext(opened.dataset, opened.fingerprint, variant.splits["folds"], out,
                                     recipe.random_state, n_jobs, allotted,
                                     storage.variant(f"{kind}-{variant.key}", folder), progress,
                                     splits=variant.splits, cache_folder=folder / "cache", metric=recipe.metric,
                                     ordinal=recipe.ordinal, finished=tuple(refitted),
                                     include_background=recipe.include_background, cv=recipe.cv)
                out.mkdir(parents=True)
                result = _refit(rung_class(rung.name, recipe.task)(specs[rung.name].params), context, recipe,
                                variant.where)
                for item in out.iterdir():  # keep the score and predictions, not the models
                    if item.is_dir():
                        shutil.rmtree(item)
                    else:
                        item.unlink()
                write_result(out, result)
            pending.pop((rung.name, variant.key), None)
            entry = read_result(out)
            if entry.done:
                refitted.append(entry)
            results[rung.name, variant.key] = entry
    return results


def _refit(rung: Rung, context: FitContext, recipe: Recipe, where: dict[str, Any]) -> RungResult:
    """Plan and fit ``rung`` on a variant's splits (``where``: what the result records of it) as a
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
