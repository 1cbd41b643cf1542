"""What a report says that differs by task: its dataset sentence, a rung's own tables and figures, the per-case
table and how two rungs' paired gain is found. The report asks the run's task for its :class:`TaskReport`
(``Task.report_sections``) instead of comparing task names; the defaults here suit any task whose rungs each
report one score with a CI and store their paired gains when judged.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from automed._dotted import load_attribute
from automed.report.sections import Table, evaluated_cases

__all__ = ["Figure", "Section", "TaskReport", "task_report"]


@dataclass(frozen=True)
class Section:
    """A part of a rung's entry: a sub-heading, a sentence, a table and pictures, each optional.

    ``images`` are ``(caption, path relative to the run folder)``: linked by the Markdown report and
    embedded by the HTML one when the file exists.
    """

    title: str | None = None
    text: str | None = None
    table: Table | None = None
    images: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Figure:
    """A run-level figure written beside the report as ``file``; ``png`` None means there is nothing to plot
    (a stale file of that name is then removed)."""

    file: str
    caption: str
    png: bytes | None


class TaskReport:
    """The report's task-specific parts, with defaults for a task with one score per rung."""

    def describe_dataset(self, report: dict[str, Any]) -> str:
        """One sentence on the dataset the run was fitted on."""
        ds = report["dataset"]
        count = f": {ds['n_cases']} cases" if ds.get("n_cases") is not None else ""
        return f"Dataset `{ds['path']}` ({ds['format']}){count}."

    def rung_title(self, rung: dict[str, Any]) -> str:
        """The heading of a finished rung's entry."""
        return f"{rung['name']}, {evaluated_cases(rung)}"

    def rung_table(self, report: dict[str, Any], rung: dict[str, Any]) -> Table | None:
        """The table right under the heading (e.g. per class); None for none."""
        return None

    def rung_sections(self, report: dict[str, Any], rung: dict[str, Any]) -> list[Section]:
        """Task-specific parts of a finished rung's entry, after its notes."""
        return []

    def per_case(self, report: dict[str, Any]) -> tuple[str, Table] | None:
        """A sentence and a table of every rung's scores per comparison case; None for none."""
        return None

    def figures(self, report: dict[str, Any]) -> list[Figure]:
        """Run-level figures beside the leaderboard's."""
        return []

    def write_rung_figures(self, report: dict[str, Any], folder: Path) -> None:
        """Write per-rung pictures into the rungs' folders of the run ``folder`` (none by default)."""

    def paired_gain(self, report: dict[str, Any], base: dict[str, Any],
                    new: dict[str, Any]) -> dict[str, Any] | None:
        """The paired gain of rung ``new`` over rung ``base`` on their shared cases; None where unknown.

        The default reads the gains the judge stored with ``new`` (against the baseline, the best rung
        below it and its reference).
        """
        stored = (new.get(key) for key in ("gain_vs_baseline", "gain_vs_prev", "gain_vs_reference"))
        return next((g for g in stored if g and g.get("vs") == base["name"] and g.get("mean") is not None), None)

    def scored_cases(self, report: dict[str, Any], metric: dict[str, Any]) -> str:
        """Which cases ``metric`` was computed on, for a rung that records no comparison (older runs)."""
        return f"{metric.get('n')} evaluated cases"


def task_report(report: dict[str, Any]) -> TaskReport:
    """The :class:`TaskReport` of the report's task (``Task.report_sections``, ``"module:Class"``)."""
    from automed.tasks import get_task

    return load_attribute(get_task(report["task"]).report_sections)()
