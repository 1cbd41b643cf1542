"""Open a run folder's recipe, run record and dataset again, as its fit opened them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from automed.recipe import Recipe
from automed.run_record import RunRecord, read_run
from automed.tasks import Opened, get_task

__all__ = ["Reopened", "reopen_run"]


@dataclass(frozen=True)
class Reopened:
    """A run's resolved recipe, its run record and its dataset opened with the recorded fingerprint and splits."""

    recipe: Recipe
    record: RunRecord
    opened: Opened


def reopen_run(folder: Path) -> Reopened:
    """What the set-up of the fit in ``folder`` (finished, or its staging folder) wrote, with its dataset reopened."""
    recipe = Recipe.from_yaml(folder / "recipe.yaml")
    record = read_run(folder)
    opened = get_task(recipe.task).reopen(recipe, Path(record.data),
                                          json.loads((folder / "fingerprint.json").read_text()),
                                          json.loads((folder / "splits.json").read_text()))
    return Reopened(recipe, record, opened)
