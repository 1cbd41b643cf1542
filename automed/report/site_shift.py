"""The report's section on another site: each rung's metric on a site it never saw beside its in-site figure, and
the rung that degrades least (the one to deploy is not always the one that wins in-site)."""

from __future__ import annotations

from typing import Any

from automed.report.tables import format_ci
from automed.report.task_report import Section

__all__ = ["site_shift_sections"]


def _ci(metric: dict[str, Any] | None) -> str:
    return "—" if not metric else format_ci(metric["mean"], metric.get("ci_low"), metric.get("ci_high"))


def site_shift_sections(report: dict[str, Any]) -> list[Section]:
    """The section (none for a run fitted without ``cv: by-site``)."""
    shift = report.get("site_shift")
    if not shift:
        return []
    metric, sites = {"auc": "AUC"}.get(shift["metric"], shift["metric"].capitalize()), shift["sites"]
    text = (f"Each rung refitted once per site on the other sites' cases and scored on {shift['judged_cases']} "
            f"({len(sites)} sites: " + ", ".join(f"{s} ({n} cases)" for s, n in sites.items()) + "), beside its "
            "in-site score (the fit's own scores of the same cases: a rung judged on fold 0 scored only those).")
    for name, rung in shift["rungs"].items():
        pooled = rung.get("all_sites")
        if pooled and pooled["in_site"] and pooled["unseen"]:
            text += (f" {name}: expect {metric} {pooled['in_site']['mean']:.3f} → {pooled['unseen']['mean']:.3f} on a "
                     f"new site (paired difference {_ci(pooled['difference'])} on the {pooled['n_judged']} cases the fit "
                     "scored itself).")
    if shift.get("degrades_least"):
        text += f" {shift['degrades_least']} degrades least."
    rows = []
    for name, rung in shift["rungs"].items():
        for site, row in [*rung["sites"].items(), ("all sites", rung.get("all_sites"))]:
            if row is None:
                continue
            unseen = _ci(row["unseen"]) if row.get("unseen") else f"skipped: {row.get('skipped')}"
            rows.append([name, site, f"{row.get('n_judged', row['n_cases'])} of {row['n_cases']}",
                         _ci(row.get("in_site")), unseen, _ci(row.get("difference"))])
    head = ["rung", "site", "cases judged", f"in-site {metric} [95% CI]", f"unseen-site {metric} [95% CI]",
            "difference [95% CI]"]
    return [Section("Another site", text, (head, rows))]
