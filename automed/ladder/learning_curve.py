"""The learning curve: every finished rung refitted on fractions of the labelled cases."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from automed.ladder.staging import write_json
from automed.recipe import Recipe
from automed.rungs.base import FitContext

__all__ = ["learning_curve"]

log = logging.getLogger("automed")


def learning_curve(folder: Path, recipe: Recipe, dataset: Any, summary: Any, splits: dict[str, Any],
                   done: list[dict[str, Any]], n_jobs: int, progress: bool) -> None:
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
                context = FitContext(dataset, summary, subset["folds"], out, recipe.random_state, n_jobs,
                                     allotted, f"sqlite:///{folder / f'optuna-fraction-{fraction:g}.db'}", progress,
                                     splits=subset, cache_folder=folder / "cache", metric=recipe.metric,
                                     ordinal=recipe.ordinal, finished=tuple(refitted))
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
                write_json(out / "result.json", entry)
            entry = json.loads((out / "result.json").read_text())
            if "metric" in entry:
                refitted.append(entry)
            curve[rung["name"]].append({k: entry[k] for k in ("fraction", "n_dev", "metric", "skipped") if k in entry})
    write_json(folder / "learning_curve.json", {"metric": recipe.metric, "fractions": list(recipe.label_fractions),
                                                 "cases": "held-out test cases", "rungs": curve})
