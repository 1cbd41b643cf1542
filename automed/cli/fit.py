"""``automed fit``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pathlib import Path

import click

from automed.cli._choices import DATA_FORMATS, TASKS
from automed.cli._errors import clean_errors


@click.command()
@click.argument("data", required=False, type=click.Path(path_type=str))
@click.option("--task", type=TASKS,
              help="Task (default: the recipe's, else segmentation).")
@click.option("--recipe", "recipe_path", type=click.Path(dir_okay=False), help="YAML recipe (see recipes/).")
@click.option("--out", type=click.Path(), help="Run folder to create.")
@click.option("--resume", "resume", type=click.Path(), help="Continue the interrupted fit of this run folder.")
@click.option("--replay", "replay", type=click.Path(),
              help="Train the plan this finished run realised again, without searching (DATA: default its data).")
@click.option("--format", "data_format",
              type=DATA_FORMATS,
              help="Dataset layout (default: detect).")
@click.option("--rungs", help="Comma-separated rungs to climb, e.g. classical,unet2d,unet3d.")
@click.option("--folds", "n_folds", type=int, help="Cross-validation folds.")
@click.option("--folds-file", type=click.Path(dir_okay=False),
              help="Fixed folds, nnU-Net's splits_final.json layout: [{train: [...], val: [...]}, ...].")
@click.option("--cv", type=click.Choice(["fold0", "full", "by-site"]),
              help="Judge rungs on fold 0's validation cases (default) or on every fold; by-site: also refit each "
                   "rung leaving each site out (cases with a site).")
@click.option("--seed", "random_state", type=int, help="Random seed.")
@click.option("--budget", help="Time budget of the whole fit, e.g. 10min or 2h.")
@click.option("--max-vram", help="Training-memory limit for deep rungs, e.g. 8GB.")
@click.option("--min-gain", type=float, help="Stop climbing when a rung's gain is confidently below this.")
@click.option("--full-ladder", is_flag=True, default=None, help="Climb every rung whatever the gains.")
@click.option("--pretrained-weights", "pretrained", multiple=True,
              help="State dict for the transfer rungs, FILE or RUNG=FILE (e.g. vgg16=vgg16.pth); repeatable.")
@click.option("--label-fractions", help="Classification learning curve, e.g. 0.1,0.25,1.0.")
@click.option("--unlabeled", type=click.Path(file_okay=False), help="Unlabelled images for the ssl rung's pretraining.")
@click.option("--raters", help="Several annotators: comma-separated glob patterns of the rater folders, e.g. "
                                "'experts_*/person*' (default: labels_<rater>/ folders beside labels/, if any).")
@click.option("--consensus", help="The label of several raters the rungs train on: staple (default), majority or "
                                  "rater:NAME.")
@click.option("--atlas", help="Registration: IMAGE[,LABEL] registered onto every held-out subject (atlas-to-subject).")
@click.option("--jobs", "n_jobs", type=int, help="Worker processes/threads (-1: all cores).")
@click.option("--storage", envvar="AUTOMED_STORAGE", show_envvar=True,
              help="Database of the run's Optuna studies, shared with `automed worker` processes, e.g. "
                   "postgresql://USER@HOST/DB (password: PGPASSWORD or ~/.pgpass). Default: SQLite in the run folder.")
@click.option("--dask", help="Extract the classical rungs' per-case features on Dask: 'local' (a LocalCluster of "
                             "--jobs processes) or a scheduler address, e.g. tcp://HOST:8786.")
@click.option("--overwrite", is_flag=True, help="Replace an existing run folder (only once the new fit succeeds).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@clean_errors
def fit(data: str | None, task: str | None, recipe_path: str | None, out: str | None, resume: str | None,
        replay: str | None,
        data_format: str | None, rungs: str | None, n_folds: int | None, folds_file: str | None, cv: str | None,
        random_state: int | None,
        budget: str | None, max_vram: str | None, min_gain: float | None, full_ladder: bool | None,
        pretrained: tuple[str, ...], label_fractions: str | None, unlabeled: str | None, raters: str | None,
        consensus: str | None, atlas: str | None, n_jobs: int | None, storage: str | None, dask: str | None, overwrite: bool,
        quiet: bool) -> None:
    """Climb the ladder on DATA and write a run folder with its report.

    DATA is a segmentation dataset folder (MSD, nnU-Net, images/ + labels/) or, with
    --task classification, a MedMNIST .npz, a folder of class folders or a CSV manifest.
    After an interruption, `automed fit --resume RUN` continues where the fit stopped;
    `automed fit --replay RUN --out NEW` trains what RUN chose again, without searching.
    """
    import logging

    import automed
    from automed.recipe import parse_duration, parse_size

    if not quiet:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    if resume is not None or replay is not None:
        plan_options = {"--recipe": recipe_path, "--task": task, "--format": data_format, "--rungs": rungs,
                        "--folds": n_folds, "--folds-file": folds_file, "--cv": cv, "--seed": random_state,
                        "--budget": budget, "--max-vram": max_vram, "--min-gain": min_gain, "--full-ladder": full_ladder,
                        "--pretrained-weights": pretrained or None, "--label-fractions": label_fractions,
                        "--unlabeled": unlabeled, "--raters": raters, "--consensus": consensus, "--atlas": atlas,
                        "--jobs": n_jobs}
        if resume is not None:
            given = {**plan_options, "DATA": data, "--out": out, "--overwrite": overwrite or None, "--replay": replay}
            if named := [name for name, value in given.items() if value is not None]:
                raise click.UsageError(f"--resume takes only the run folder (and --storage, --dask, --quiet); "
                                       f"{', '.join(named)} cannot change an interrupted fit, which continues with "
                                       "its own recipe and data.")
            from automed.ladder.contexts import Execution
            from automed.ladder.runner import resume_run

            _summarize(automed.Run.load(resume_run(resume, progress=not quiet, execution=Execution(storage, dask))))
            return
        if named := [name for name, value in plan_options.items() if value is not None]:
            raise click.UsageError(f"--replay takes the run folder, --out and optionally DATA, --overwrite and --quiet; "
                                   f"{', '.join(named)} would change the plan it replays.")
        if out is None:
            raise click.UsageError("--replay needs --out, the new run folder.")
        _summarize(automed.replay(replay, out, data, overwrite=overwrite, progress=not quiet))
        return
    if data is None or out is None:
        raise click.UsageError("DATA and --out are required (or --resume RUN).")
    recipe = automed.Recipe.from_yaml(recipe_path) if recipe_path else (automed.Recipe(task=task) if task else automed.Recipe())
    changes = {"task": task, "data_format": data_format, "n_folds": n_folds, "folds_file": folds_file,
               "random_state": random_state,
               "budget_s": parse_duration(budget), "n_jobs": n_jobs, "cv": cv, "max_vram_bytes": parse_size(max_vram),
               "min_gain": min_gain, "full_ladder": full_ladder,
               "label_fractions": _fractions(label_fractions) if label_fractions else None,
               "raters": tuple(r.strip() for r in raters.split(",") if r.strip()) if raters else None,
               "consensus": consensus,
               # absolute, so a resume from another folder finds the atlas the recipe records
               "atlas": ",".join(str(Path(part.strip()).resolve()) for part in atlas.split(",")) if atlas else None}
    changes = {k: v for k, v in changes.items() if v is not None}
    if "task" in changes and changes["task"] != recipe.task and recipe_path:
        raise click.UsageError(f"--task {task} contradicts the recipe's task '{recipe.task}'.")
    recipe = recipe.replace(**changes)
    if n_folds is not None and recipe.folds_file is not None:  # --folds 5 is the default n_folds: check it here
        from automed.data.splits import check_fold_count

        check_fold_count(recipe.folds_file, None, n_folds)
    with _option("--rungs", rungs):
        recipe = recipe.with_rungs([n.strip() for n in rungs.split(",") if n.strip()]) if rungs is not None else recipe
    with _option("--pretrained-weights", " ".join(pretrained)):
        recipe = recipe.with_pretrained_weights(_weight_files(pretrained)) if pretrained else recipe
    with _option("--unlabeled", unlabeled):
        recipe = recipe.with_rung_params("ssl", unlabeled=unlabeled) if unlabeled else recipe
    _summarize(automed.fit(recipe, data, out, overwrite=overwrite, progress=not quiet, storage=storage, dask=dask))


def _fractions(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(f) for f in text.split(",") if f.strip())
    except ValueError as exc:
        raise click.UsageError(f"--label-fractions takes numbers like 0.1,0.25,1.0; got {text!r}.") from exc


@contextmanager
def _option(flag: str, value: str | None) -> Iterator[None]:
    """A recipe's refusal of what the option ``flag`` asked for is a usage error naming the option and ``value``."""
    from automed.errors import RecipeError

    try:
        yield
    except RecipeError as exc:
        raise click.UsageError(f"{flag} {value!r} {exc}") from exc


def _weight_files(pretrained: tuple[str, ...]) -> dict[str | None, str]:
    """``--pretrained-weights`` items, ``RUNG=FILE`` or a bare ``FILE`` (every transfer rung), as rung -> file."""
    from pathlib import Path

    files: dict[str | None, str] = dict(item.split("=", 1) if "=" in item else (None, item) for item in pretrained)
    for path in files.values():
        if not Path(path).is_file():
            raise click.UsageError(f"--pretrained-weights {path}: file not found.")
    return files


def _summarize(run: Any) -> None:
    from automed.report.tables import format_ci

    for row in run.leaderboard():
        if row["status"] != "done":
            click.echo(f"{row['rung']:>12}  {row['status']}: {row.get('reason') or ''}")
            continue
        click.echo(f"{row['rung']:>12}  {row['metric']} {format_ci(row['mean'], row['ci_low'], row['ci_high'], 4)}"
                   f"  fit {row['fit_seconds']:.0f}s  peak RSS {row['peak_rss_bytes'] / 2**30:.2f} GiB")
    click.echo(run.report_["recommendation"]["sentence"])
    click.echo(f"Run folder: {run.folder}  (report: {run.folder / 'report.html'})")
    if any(row["status"] == "done" for row in run.leaderboard()):
        click.echo(f"Next: automed predict {run.folder} IMAGES --out PREDICTIONS")
