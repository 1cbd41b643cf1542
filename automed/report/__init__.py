"""Reports of a run folder: ``report.json`` for machines, ``report.md`` and ``report.html`` for people."""

from __future__ import annotations

import json
from pathlib import Path

from automed.report.build import build_report
from automed.report.render import to_html, to_markdown

__all__ = ["build_report", "to_html", "to_markdown", "write_reports"]


def write_reports(run_folder: str | Path) -> dict:
    """(Re)build ``report.json`` from the run folder's files and render it to Markdown and HTML."""
    folder = Path(run_folder)
    report = build_report(folder)
    for name, text in (("report.json", json.dumps(report, indent=2)), ("report.md", to_markdown(report)),
                       ("report.html", to_html(report))):
        tmp = folder / f".{name}.partial"
        tmp.write_text(text)
        tmp.replace(folder / name)
    return report
