"""What another site will cost: every finished rung refitted once per site on the other sites' cases and scored on
that site's (leave-one-site-out), beside its in-site figure from the fit itself (``site_shift.json``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from automed.ladder.refits import Variant, refit_rungs
from automed.ladder.staging import write_json
from automed.recipe import Recipe
from automed.results import RungResult
from automed.tasks import Opened, get_task

__all__ = ["SITE_SHIFT_JSON", "site_shift"]

SITE_SHIFT_JSON = "site_shift.json"


def site_shift(folder: Path, recipe: Recipe, opened: Opened, done: list[RungResult], n_jobs: int, progress: bool,
               seconds_left: Callable[[], float] | None = None) -> None:
    """Refit every rung in ``done`` leaving each site out (:meth:`Task.site_splits`) and write ``site_shift.json``:
    per rung and site, the metric on the site unseen (the refit, on every case of the site) and in-site (the fit's
    own out-of-fold scores of the site's cases), their paired difference on the cases both scored, and over the
    sites the mean of each; the rung that degrades least.

    The refits share what the budget has left in proportion to each rung's fit time times the share of the cases
    they train on (see :func:`~automed.ladder.refits.refit_rungs`).
    """
    from automed.statistics import case_scores, paired_gain

    task = get_task(recipe.task)
    splits = task.site_splits(opened)
    total = sum(len(s["folds"][0]["val"]) for s in splits.values())
    keys = {site: _key(i, site) for i, site in enumerate(splits)}
    variants = [Variant(keys[site], s, {"site": site, "n_train": len(s["dev"])}, len(s["dev"]) / total,
                        f"without site {site}") for site, s in splits.items()]
    refits = refit_rungs(folder, recipe, opened, done, "sites", variants, n_jobs, progress, seconds_left)
    scored = [k for k in sorted(opened.fingerprint.classes) if recipe.include_background or k != 0]
    rungs: dict[str, Any] = {}
    for rung in done:
        in_site = case_scores(rung.per_case, scored)
        per_site, drops, unseen_means, in_means = {}, [], [], []
        for site, s in splits.items():
            entry = refits[rung.name, keys[site]]
            cases = set(s["folds"][0]["val"])
            own = {c: v for c, v in in_site.items() if c in cases}
            row: dict[str, Any] = {"n_cases": len(cases), "in_site": _mean(own, recipe.random_state)}
            if entry.done:
                unseen = case_scores(entry.per_case, scored)
                row.update(unseen=entry.metric, difference=paired_gain(own, unseen, recipe.random_state))
                drops += [unseen[c] - own[c] for c in own if c in unseen]
                unseen_means.append(entry.metric["mean"])
                if row["in_site"]:
                    in_means.append(row["in_site"]["mean"])
            else:
                row["skipped"] = entry.reason
            per_site[site] = row
        rungs[rung.name] = {"sites": per_site,
                            "in_site_mean": float(np.mean(in_means)) if in_means else None,
                            "unseen_mean": float(np.mean(unseen_means)) if unseen_means else None,
                            "difference": _summary(drops, recipe.random_state)}
    judged = {n: r["difference"]["mean"] for n, r in rungs.items() if r["difference"]}
    write_json(folder / SITE_SHIFT_JSON, {
        "metric": recipe.metric, "sites": {site: len(s["folds"][0]["val"]) for site, s in splits.items()},
        "rungs": rungs, "degrades_least": max(judged, key=judged.get) if judged else None,
        "note": "unseen: each rung refitted on the other sites' cases and scored on every case of the site; in-site: "
                "the fit's own out-of-fold scores of the site's cases (models that trained on the site's other "
                "cases); difference: unseen - in-site, paired on the cases both scored, with a bootstrap 95% CI"})


def _key(index: int, site: str) -> str:
    """The ``index``-th site's folder name (its name, made safe for a path, after its number: two names made
    alike stay apart)."""
    import re

    return f"{index:02d}_{re.sub(r'[^A-Za-z0-9_.-]', '_', site)}"


def _mean(scores: dict[str, float], random_state: int) -> dict[str, Any] | None:
    from automed.metrics import summarize

    return summarize(list(scores.values()), random_state) if scores else None


def _summary(values: list[float], random_state: int) -> dict[str, Any] | None:
    from automed.metrics import summarize

    if not values:
        return None
    found = summarize(values, random_state)
    return {k: found[k] for k in ("mean", "ci_low", "ci_high", "n")}
