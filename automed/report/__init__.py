"""Reports of a run folder: ``report.json`` for machines, ``report.md`` and ``report.html`` for people."""

from __future__ import annotations

import json
from pathlib import Path

from automed.data.atomic import write_bytes
from automed.errors import RunFolderError
from automed.report.build import build_report
from automed.report.learning_curve import LEARNING_CURVE_PICTURE
from automed.report.plots import TRAINING_CURVES, learning_curve_png, pareto_png, training_curves_png
from automed.report.recommend import recommend
from automed.report.render import to_html, to_markdown
from automed.report.task_report import task_report

__all__ = ["build_report", "recommend", "to_html", "to_markdown", "write_reports"]


def write_reports(run_folder: str | Path) -> dict:
    """(Re)build ``report.json`` from the run folder's files and render it to Markdown and HTML.

    Also writes the figures ``report.md`` links to (and ``report.html`` embeds): ``pareto.png``
    (metric vs compute), ``learning_curve.png``, the task's figures (segmentation: ``dice_boxplot.png``)
    and, per rung, ``rungs/<name>/training_curves.png`` and the task's pictures (segmentation:
    ``rungs/<name>/overlays.png``); a stale figure is removed when there is nothing to plot.
    """
    folder = Path(run_folder)
    _refuse_losing_rungs(folder)
    report = build_report(folder)
    task = task_report(report)
    figures = {"pareto.png": pareto_png(report), LEARNING_CURVE_PICTURE: learning_curve_png(report),
               **{figure.file: figure.png for figure in task.figures(report)}}
    figures.update({f"rungs/{r['name']}/{TRAINING_CURVES}": training_curves_png(r) for r in report["rungs"]
                    if (folder / "rungs" / r["name"]).is_dir()})
    for name, png in figures.items():
        if png is None:
            (folder / name).unlink(missing_ok=True)
        else:
            write_bytes(folder / name, png)
    task.write_rung_figures(report, folder)
    for name, text in (("report.json", json.dumps(report, indent=2)), ("report.md", to_markdown(report, folder)),
                       ("report.html", to_html(report, folder))):
        write_bytes(folder / name, text.encode())
    return report


def _refuse_losing_rungs(folder: Path) -> None:
    """Raise if the current ``report.json`` records a finished or skipped rung whose ``result.json`` is gone:
    a rebuild would replace what is known of it with "not run"."""
    try:
        previous = json.loads((folder / "report.json").read_text())
        recorded = [r["name"] for r in previous["rungs"] if r.get("status") in ("done", "skipped")]
    except (OSError, ValueError, KeyError, TypeError):
        return  # no report, or one that holds nothing to keep
    lost = [name for name in recorded if not (folder / "rungs" / name / "result.json").is_file()]
    if lost:
        raise RunFolderError(f"{folder / 'rungs' / lost[0] / 'result.json'}: missing, although report.json records "
                             f"rung(s) {lost}; the run folder is damaged, so report.json is left as it is "
                             "(restore the rungs/ folder to rebuild it).")
