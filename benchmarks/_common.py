"""Shared by the benchmark scripts: fit a shipped recipe on a dataset and time it."""

from __future__ import annotations

import time
from pathlib import Path

import automed

ROOT = Path(__file__).resolve().parents[1]


def timed_fit(data: Path, recipe_file: str, out: Path) -> tuple[automed.Run, automed.Recipe, float]:
    """Fit ``recipes/<recipe_file>`` on ``data`` into ``out``; return the run, the recipe and wall seconds."""
    recipe = automed.Recipe.from_yaml(ROOT / "recipes" / recipe_file)
    started = time.monotonic()
    run = automed.fit(recipe, data, out, progress=False)
    return run, recipe, time.monotonic() - started
