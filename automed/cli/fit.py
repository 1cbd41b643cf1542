"""``automed fit``."""

from __future__ import annotations

import click

from automed.cli._errors import clean_errors


@click.command()
@click.argument("data", type=click.Path(path_type=str))
@click.option("--task", type=click.Choice(["segmentation", "classification"]),
              help="Task (default: the recipe's, else segmentation).")
@click.option("--recipe", "recipe_path", type=click.Path(dir_okay=False), help="YAML recipe (see recipes/).")
@click.option("--out", required=True, type=click.Path(), help="Run folder to create.")
@click.option("--format", "data_format",
              type=click.Choice(["auto", "msd", "nnunet", "folders", "medmnist", "class_folders", "csv"]),
              help="Dataset layout (default: detect).")
@click.option("--folds", "n_folds", type=int, help="Cross-validation folds.")
@click.option("--seed", "random_state", type=int, help="Random seed.")
@click.option("--budget", help="Time budget of the whole fit, e.g. 10min or 2h.")
@click.option("--jobs", "n_jobs", type=int, help="Worker processes/threads (-1: all cores).")
@click.option("--overwrite", is_flag=True, help="Replace an existing run folder (only once the new fit succeeds).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@clean_errors
def fit(data: str, task: str | None, recipe_path: str | None, out: str, data_format: str | None, n_folds: int | None,
        random_state: int | None, budget: str | None, n_jobs: int | None, overwrite: bool, quiet: bool) -> None:
    """Fit the ladder on DATA and write a run folder with its report.

    DATA is a segmentation dataset folder (MSD, nnU-Net, images/ + labels/) or, with
    --task classification, a MedMNIST .npz, a folder of class folders or a CSV manifest.
    """
    import logging

    import automed
    from automed.recipe import parse_duration

    recipe = automed.Recipe.from_yaml(recipe_path) if recipe_path else automed.Recipe(task=task or "segmentation")
    changes = {"task": task, "data_format": data_format, "n_folds": n_folds, "random_state": random_state,
               "budget_s": parse_duration(budget), "n_jobs": n_jobs}
    changes = {k: v for k, v in changes.items() if v is not None}
    if "task" in changes and changes["task"] != recipe.task and recipe_path:
        raise click.UsageError(f"--task {task} contradicts the recipe's task '{recipe.task}'.")
    recipe = recipe.replace(**changes)
    if not quiet:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    run = automed.fit(recipe, data, out, overwrite=overwrite, progress=not quiet)
    from automed.report.tables import format_ci

    for row in run.leaderboard():
        click.echo(f"{row['rung']:>12}  {row['metric']} {format_ci(row['mean'], row['ci_low'], row['ci_high'], 4)}"
                   f"  fit {row['fit_seconds']:.0f}s  peak RSS {row['peak_rss_bytes'] / 2**30:.2f} GiB")
    click.echo(f"Run folder: {run.folder}  (report: {run.folder / 'report.html'})")
    click.echo(f"Next: automed predict {run.folder} IMAGES --out PREDICTIONS")
