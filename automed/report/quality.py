"""The report's section on predictions to distrust: for each rung, how well its quality score picked out the
validation cases it got badly wrong, and what a flag for review catches there."""

from __future__ import annotations

from typing import Any

from automed.report.tables import format_ci
from automed.report.task_report import Section

__all__ = ["quality_sections"]


def _rate(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.0f} %"


def quality_sections(report: dict[str, Any]) -> list[Section]:
    """The section (none for a run without a quality record)."""
    quality = report.get("quality")
    if not quality or not quality["rungs"]:
        return []
    text = (f"`automed predict` writes a quality record per case (quality.csv, or columns of the classification "
            f"CSV): how far the image lies from the {quality['n_reference_images']} training images (out of "
            "distribution beyond the 99th percentile of their distances to one another), how unsure the rung is, and "
            "a flag for review whose threshold was chosen here, on the validation cases, to pick out the ones the "
            "rung got badly wrong; the score averages the signs that told those cases apart there.")
    if quality["notes"]:
        text += " Left out: " + "; ".join(quality["notes"]) + "."
    rows = []
    for name, c in quality["rungs"].items():
        auc, flagged = c["auc"], c["flagged"]
        alone = c.get("component_auc") or {}
        used = ", ".join(f"{n} ({alone[n]:.2f})" if alone.get(n) is not None else n for n in c["components"])
        rows.append([name, used, c["bad"],
                     format_ci(auc.get("mean"), auc.get("ci_low"), auc.get("ci_high")),
                     f"{flagged.get('n_flagged', 0)} of {flagged.get('n', 0)}",
                     f"{_rate(flagged.get('bad_rate_flagged'))} vs {_rate(flagged.get('bad_rate_unflagged'))}"])
    head = ["rung", "score from (each one's own AUC)", "a bad case", "AUC for a bad case [95% CI]", "flagged for review",
            "bad among flagged vs the others"]
    return [Section("Which predictions not to trust", text, (head, rows))]
