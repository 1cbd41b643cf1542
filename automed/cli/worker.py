"""``automed worker``."""

from __future__ import annotations

import click

from automed.cli._errors import clean_errors


@click.command()
@click.argument("run", type=click.Path(path_type=str))
@click.option("--storage", envvar="AUTOMED_STORAGE", show_envvar=True,
              help="The fit's study database, as given to `automed fit --storage` (password: PGPASSWORD or "
                   "~/.pgpass).")
@click.option("--wait", "wait", help="Leave when no search has been open this long, e.g. 30min "
                                     "(default: stay until the fit ends).")
@click.option("--quiet", is_flag=True, help="Log warnings only.")
@clean_errors
def worker(run: str, storage: str | None, wait: str | None, quiet: bool) -> None:
    """Run trials of the searches of the fit of RUN, on this machine, until that fit ends.

    Start the fit with `automed fit ... --out RUN --storage postgresql://USER@HOST/DB`; start as
    many workers as you like, here or on machines that see the same data and RUN at the same path.
    A worker waits for the fit's next search, runs its trials beside the fit's own, and leaves
    when the fit ends. A worker that dies loses only its running trial, which another process
    runs again (from its checkpoint).
    """
    import logging

    from automed.cluster.worker import serve
    from automed.recipe import parse_duration

    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(asctime)s %(message)s")
    done = serve(run, storage, parse_duration(wait) if wait else None)
    trials = ", ".join(f"{rung}: {n}" for rung, n in done.trials.items()) or "none"
    click.echo(f"automed worker: done ({done.reason}); trials run here: {trials}")
