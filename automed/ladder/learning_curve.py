"""The learning curve: every finished rung refitted on fractions of the labelled cases."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from automed.cluster.storage import StudyStorage
from automed.ladder.refits import Variant, refit_rungs
from automed.ladder.staging import write_json
from automed.recipe import Recipe
from automed.results import RungResult
from automed.tasks import Opened, get_task

__all__ = ["learning_curve"]


def learning_curve(folder: Path, recipe: Recipe, opened: Opened, done: list[RungResult], n_jobs: int,
                   progress: bool, storage: StudyStorage,
                   seconds_left: Callable[[], float] | None = None) -> None:
    """Refit every finished rung on fractions of the labelled cases (:meth:`Task.label_subset`: stratified
    development cases for classification, fold 0's training cases for segmentation), judged on the cases the
    full fit was; write ``learning_curve.json``.

    Under a budget (``seconds_left``: the seconds the fit has left), the refits still to run share what is left in
    proportion to the rung's own fit time times the fraction. Each refit keeps only its
    ``result.json`` (in ``rungs/<rung>/fractions/<fraction>/``: the same record as a rung's, with
    ``fraction`` and ``n_dev``, and the per-case predictions that rungs combining others read);
    finished refits are kept on resume.
    """
    task = get_task(recipe.task)
    subsets = {f: task.label_subset(opened, f, recipe) for f in recipe.label_fractions}
    variants = [Variant(f"{f:g}", subsets[f], {"fraction": f, "n_dev": len(subsets[f]["dev"])}, f,
                        f"on {100 * f:.0f}% of the labelled cases") for f in recipe.label_fractions if f < 1]
    refits = refit_rungs(folder, recipe, opened, done, "fractions", variants, n_jobs, progress, storage,
                         seconds_left)
    curve: dict[str, list[dict[str, Any]]] = {r.name: [] for r in done}
    for fraction in recipe.label_fractions:
        for rung in done:
            if fraction >= 1:
                curve[rung.name].append({"fraction": 1.0, "n_dev": len(subsets[fraction]["dev"]),
                                         "metric": rung.comparison["metric"]})
                continue
            entry = refits[rung.name, f"{fraction:g}"]
            point = {"fraction": entry.summary["fraction"], "n_dev": entry.summary["n_dev"]}
            if entry.done:
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
