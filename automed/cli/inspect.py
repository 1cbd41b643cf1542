"""``automed inspect``."""

from __future__ import annotations

from pathlib import Path

import click

from automed.cli._choices import DATA_FORMATS, TASKS
from automed.cli._errors import clean_errors
from automed.tasks import get_task, task_names


def _task_of(data: str) -> str:
    """The task a dataset path names by its suffix (``Task.data_suffixes``), else the recipe's default task."""
    from automed.recipe import Recipe

    suffix = Path(data).suffix.lower()
    return next((name for name in task_names() if suffix in get_task(name).data_suffixes), Recipe().task)


@click.command()
@click.argument("data", type=click.Path(path_type=str))
@click.option("--task", type=TASKS,
              help="Task (default: the one a file's suffix names, e.g. classification for a .npz or .csv; else "
                   "segmentation).")
@click.option("--format", "data_format", type=DATA_FORMATS, default="auto",
              help="Dataset layout (default: detect).")
@click.option("--json", "as_json", is_flag=True, help="Print the fingerprint as JSON.")
@clean_errors
def inspect(data: str, task: str | None, data_format: str, as_json: bool) -> None:
    """Fingerprint the dataset DATA and list every problem found; fits nothing.

    Exits with status 1 when a problem would stop `automed fit`.
    """
    import json

    found = get_task(task or _task_of(data)).inspect(Path(data), data_format)
    if found.record is not None:
        for line in [json.dumps(found.record, indent=2)] if as_json else found.lines:
            click.echo(line)
    for warning in found.warnings:
        click.echo(f"warning: {warning}", err=True)
    for problem in found.problems:
        click.echo(f"problem: {problem}", err=True)
    if found.problems:
        raise click.ClickException(f"{len(found.problems)} problem(s) found in {data}.")
    click.echo("No problems found.")
