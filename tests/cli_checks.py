"""Checks shared by the bad-input tests: run the CLI and prove it wrote and deleted nothing."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

from click.testing import CliRunner

from automed.cli import main


def snapshot(*roots: Path) -> dict[str, str]:
    """Every file and folder under ``roots`` (hidden ones included) with a hash of its bytes."""
    found = {}
    for root in roots:
        if root.is_file():
            found[str(root)] = hashlib.sha1(root.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*")) if root.is_dir() else []:
            found[str(path)] = hashlib.sha1(path.read_bytes()).hexdigest() if path.is_file() else "dir"
    return found


def _siblings(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def fails(args: list[str], message: str, *untouched: Path, exit_code: int = 1) -> str:
    """Run the CLI; assert its exit status, that ``message`` (a regex) is in the output, and that
    nothing under ``untouched`` or beside it changed."""
    before = snapshot(*untouched)
    around = {p.parent: _siblings(p.parent) for p in untouched}
    result = CliRunner().invoke(main, args)
    assert result.exit_code == exit_code, result.output
    assert re.search(message, result.output), result.output
    assert "Traceback" not in result.output
    assert snapshot(*untouched) == before
    assert {p: _siblings(p) for p in around} == around  # no hidden .old-/.partial folder left beside them
    return result.output


def copy_run(run: Path, to: Path) -> Path:
    """A copy of a shared fitted run that a test may damage."""
    shutil.copytree(run, to)
    return to


def edit_dataset_json(data: Path, edit) -> Path:
    """Apply ``edit`` (a function changing the dict in place) to ``data/dataset.json``."""
    meta = json.loads((data / "dataset.json").read_text())
    edit(meta)
    (data / "dataset.json").write_text(json.dumps(meta))
    return data
