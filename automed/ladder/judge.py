"""Judge a finished rung against those below it: paired gains with CIs, and when to stop climbing."""

from __future__ import annotations

import logging
from typing import Any

from automed.recipe import Recipe
from automed.results import RungResult
from automed.tasks import get_task

__all__ = ["judge"]

log = logging.getLogger("automed")


def judge(result: RungResult, done: list[RungResult], comparison: list[str], recipe: Recipe,
          fingerprint: Any) -> dict[str, Any]:
    """The judged fields of a finished rung's ``result``: its metric on the ``comparison`` cases (as its
    task measures it), the paired gains over the baseline and the best rung so far (and over the rung
    it names in ``details["compare_with"]``) and, when gains stopped, why climbing stops."""
    measured, gain_over = get_task(recipe.task).comparison(result, comparison, recipe, fingerprint)
    judged: dict[str, Any] = {"comparison": measured, "gain_vs_baseline": None, "gain_vs_prev": None}
    if not done:
        return judged
    best = max(done, key=lambda r: r.comparison_mean)
    judged["gain_vs_baseline"] = gain_over(done[0])
    judged["gain_vs_prev"] = gain = gain_over(best)
    reference = next((r for r in done if r.name == result.details.get("compare_with")), None)
    if reference is not None:  # e.g. ssl beside the same network trained from scratch
        judged["gain_vs_reference"] = gain_over(reference)
    if (not recipe.full_ladder and gain is not None and gain["ci_high"] is not None
            and gain["ci_high"] < recipe.min_gain):
        judged["stops_climb"] = (f"climbing stopped after {result.name}: its gain over {best.name} was "
                                 f"{gain['mean']:+.3f} [95% CI {gain['ci_low']:+.3f}, {gain['ci_high']:+.3f}], "
                                 f"below min_gain {recipe.min_gain} with 95% confidence (--full-ladder climbs on).")
        log.info(judged["stops_climb"])
    return judged
