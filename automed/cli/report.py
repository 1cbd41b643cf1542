"""``automed report``."""

from __future__ import annotations

import click

from automed.cli._errors import clean_errors


@click.command()
@click.argument("run_folder", type=click.Path(path_type=str))
@clean_errors
def report(run_folder: str) -> None:
    """Rebuild report.json and re-render report.md and report.html of RUN_FOLDER."""
    from pathlib import Path

    from automed.errors import RunFolderError
    from automed.ladder.staging import STATE
    from automed.report import write_reports

    if (Path(run_folder) / STATE).is_file():
        raise RunFolderError(f"{run_folder}: an unfinished fit (it holds {STATE}); finish it with "
                             "`automed fit --resume RUN` first, and its report is written then.")
    result = write_reports(run_folder)
    click.echo(f"Best rung: {result['best_rung']}; wrote report.json, report.md, report.html in {run_folder}")
