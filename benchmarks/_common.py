"""Shared by the benchmark scripts: fit a shipped recipe on a dataset and time it."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import automed

ROOT = Path(__file__).resolve().parents[1]


def timed_fit(data: Path, recipe_file: str | automed.Recipe, out: Path) -> tuple[automed.Run, automed.Recipe, float]:
    """Fit ``recipes/<recipe_file>`` (or a recipe) on ``data`` into ``out``; return the run, the recipe
    and wall seconds."""
    recipe = recipe_file if isinstance(recipe_file, automed.Recipe) else automed.Recipe.from_yaml(
        ROOT / "recipes" / recipe_file)
    started = time.monotonic()
    run = automed.fit(recipe, data, out, progress=False)
    return run, recipe, time.monotonic() - started


def run_and_record(names: list[str], run_one: Callable[[str, Path], dict], out: Path, keep: Path | None = None) -> None:
    """``run_one(name, workdir)`` for each name, merged into the JSON file ``out`` after each one."""
    previous = json.loads(out.read_text()) if out.is_file() else {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            previous[name] = run_one(name, keep or Path(tmp))
            print(json.dumps(previous[name], indent=2))
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(previous, indent=2))
    print(f"wrote {out}")
