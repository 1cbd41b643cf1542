"""Folders that appear whole or not at all."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["folder_written_atomically"]


@contextmanager
def folder_written_atomically(folder: Path) -> Iterator[Path]:
    """A hidden sibling of ``folder`` to write into; when the block ends without an error it
    replaces ``folder`` (an existing one is removed first), and after an error it is removed, so
    a reader never sees a half-written folder."""
    partial = folder.parent / f".{folder.name}.partial-{uuid.uuid4().hex[:8]}"
    partial.mkdir(parents=True)
    try:
        yield partial
        if folder.exists():
            shutil.rmtree(folder)
        partial.rename(folder)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
