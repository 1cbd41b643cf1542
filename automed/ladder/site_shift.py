"""What another site will cost: every finished rung refitted once per site on the other sites' cases and scored on
that site's cases (leave-one-site-out), beside its in-site figure from the fit itself (``site_shift.json``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from automed.cluster.storage import StudyStorage
from automed.ladder.refits import Variant, refit_rungs
from automed.ladder.staging import write_json
from automed.recipe import Recipe
from automed.results import RungResult
from automed.tasks import Opened, get_task

__all__ = ["SITE_SHIFT_JSON", "site_shift"]

SITE_SHIFT_JSON = "site_shift.json"


def site_shift(folder: Path, recipe: Recipe, opened: Opened, done: list[RungResult], n_jobs: int, progress: bool,
               storage: StudyStorage, seconds_left: Callable[[], float] | None = None) -> None:
    """Refit every rung in ``done`` leaving each site out (:meth:`Task.site_splits`) and write ``site_shift.json``.

    Per rung and site: the metric on the site's judged cases (``site_cases``: segmentation, every case of the
    site; classification, its test cases) that the fit itself scored too, unseen (by the refit that never saw the
    site) and in-site (the fit's own scores of the same cases), and their paired difference, judged as the ladder
    judges rungs (:meth:`Task.comparison`). Over all sites: every case scored by the refit that left its site out,
    against the fit's own scores of the same cases (a classifier's pooled cases are decided with the fit's own
    threshold). The rung that degrades least is named.

    The refits share what the budget has left in proportion to each rung's fit time times the share of the cases
    they train on (see :func:`~automed.ladder.refits.refit_rungs`).
    """
    task = get_task(recipe.task)
    splits = task.site_splits(opened, recipe)
    total = sum(len(s["dev"]) for s in splits.values())
    keys = {site: _key(i, site) for i, site in enumerate(splits)}
    variants = [Variant(keys[site], s, {"site": site, "n_train": len(s["dev"])}, len(s["dev"]) / max(total, 1),
                        f"without site {site}") for site, s in splits.items()]
    refits = refit_rungs(folder, recipe, opened, done, "sites", variants, n_jobs, progress, storage,
                         seconds_left)
    rungs: dict[str, Any] = {}
    for rung in done:
        per_site, unseen_cases = {}, []
        for site, s in splits.items():
            entry = refits[rung.name, keys[site]]
            if entry.done:
                per_site[site] = _judged(task, rung, entry, s["site_cases"], recipe, opened)
                site_cases = set(s["site_cases"])
                unseen_cases += [c for c in entry.per_case if c["case_id"] in site_cases]
            else:
                per_site[site] = {"n_cases": len(s["site_cases"]), "skipped": entry.reason}
        pooled = replace(rung, per_case=unseen_cases)  # every case, by the model that never saw its site
        judged_cases = [c["case_id"] for c in unseen_cases]
        rungs[rung.name] = {"sites": per_site,
                            "all_sites": _judged(task, rung, pooled, judged_cases, recipe, opened)
                            if unseen_cases else None}
    judged = {n: r["all_sites"]["difference"]["mean"] for n, r in rungs.items()
              if r["all_sites"] and r["all_sites"]["difference"]}
    write_json(folder / SITE_SHIFT_JSON, {
        "metric": recipe.metric, "sites": {site: len(s["site_cases"]) for site, s in splits.items()},
        "judged_cases": splits[next(iter(splits))]["site_cases_are"],
        "rungs": rungs, "degrades_least": max(judged, key=judged.get) if judged else None,
        "note": "unseen: each rung refitted on the other sites' development cases and scored on the site's judged "
                "cases; in-site: the fit's own scores of the same cases (models that trained on the site's other "
                "cases); difference: unseen - in-site on the cases both scored, with a paired bootstrap 95% CI"})


def _judged(task: Any, fitted: RungResult, unseen: RungResult, cases: list[str], recipe: Recipe,
            opened: Opened) -> dict[str, Any]:
    """The in-site and unseen metric on the ``cases`` the fit itself scored too (a rung judged on fold 0 scored
    some of them only), and their paired difference, as the task judges rungs."""
    scored = {c["case_id"] for c in fitted.per_case}
    shared = [c for c in cases if c in scored]
    if not shared:
        return {"n_cases": len(cases), "n_judged": 0, "in_site": None, "unseen": None, "difference": None}
    in_site, _ = task.comparison(fitted, shared, recipe, opened.fingerprint)
    away, gain_over = task.comparison(unseen, shared, recipe, opened.fingerprint)
    difference = gain_over(fitted)
    return {"n_cases": len(cases), "n_judged": len(shared), "in_site": in_site["metric"], "unseen": away["metric"],
            "difference": None if difference is None else {k: difference[k] for k in ("mean", "ci_low", "ci_high", "n")}}


def _key(index: int, site: str) -> str:
    """The ``index``-th site's folder name (its name, made safe for a path, after its number: two names made
    alike stay apart)."""
    import re

    return f"{index:02d}_{re.sub(r'[^A-Za-z0-9_.-]', '_', site)}"
