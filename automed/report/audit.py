"""The report's label audit: the suspect cases ``automed audit`` found, why, and what they weigh in the metric."""

from __future__ import annotations

from typing import Any

from automed.audit.records import AUDIT_FOLDER, AUDIT_PNG
from automed.report.tables import format_number
from automed.report.task_report import Section

__all__ = ["AUDIT_PICTURE", "MAX_LISTED", "audit_sections"]

AUDIT_PICTURE = f"{AUDIT_FOLDER}/{AUDIT_PNG}"
"""The picture of the top suspect cases, relative to the run folder."""
MAX_LISTED = 15
"""Suspect cases listed in the report (every case is in ``audit/audit.csv``)."""


def audit_sections(report: dict[str, Any]) -> list[Section]:
    """The audit's sections (none when the run was not audited): the summary with its suspects, and what
    excluding the most suspect cases changes in the reported metric."""
    audit = report.get("audit")
    if not audit:
        return []
    suspects = [c for c in audit["cases"] if c["suspect"]]
    n = len(audit["cases"])
    text = (f"{len(suspects)} of {n} cases look suspect. " if suspects else f"None of {n} cases looks suspect. ") + \
        audit["source"] + " Every case, with its evidence, is in audit/audit.csv."
    if audit["left_out"]:
        text += " Not checked: " + "; ".join(audit["left_out"]) + "."
    rows = [[str(rank), c["case_id"], c["split"], f"{c['score']:.2f}", " / ".join(c["reasons"]),
             "" if c["metric_without"] is None else f"{format_number(c['metric_without'], 4)} ({c['metric_scope']})"]
            for rank, c in enumerate(suspects[:MAX_LISTED], 1)]
    sections = [Section("Label audit", text,
                        (["rank", "case", "split", "score", "why", "metric without it"], rows) if rows else None,
                        (("the most suspect cases", AUDIT_PICTURE),) if suspects else ())]
    metric = audit.get("metric")
    if metric and metric["mean"] is not None and len(audit["excluding_top"]) > 1:
        rows = [[str(row["k"]), str(row["n"]), format_number(row["mean"], 4),
                 "" if row["mean"] is None else f"{row['mean'] - metric['mean']:+.4f}"]
                for row in audit["excluding_top"]]
        sections.append(Section("What the suspects weigh", f"{metric['scope']} re-scored (not refitted) without the k "
                                "most suspect cases among those it counts. An upper bound on what fixing them is "
                                "worth: a suspect is by its evidence a case the models get wrong, so leaving it out "
                                "flatters the metric whether its label is wrong or the case is merely hard.",
                                (["k excluded", "cases left", "metric", "change"], rows)))
    return sections
