"""Arrays moved out of memory onto disk, read back memory-mapped."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import numpy as np

__all__ = ["spill", "spill_name"]


def spill_name(case_id: str, suffix: str = "") -> str:
    """A file-system-safe name for ``case_id`` (case ids may hold any character a file name can)."""
    return hashlib.sha1(case_id.encode()).hexdigest()[:16] + suffix


def spill(array: np.ndarray, path: Path | None) -> np.ndarray:
    """``array`` written to ``path`` (``.npy``, atomically) and returned memory-mapped read-only,
    so a fit can keep one per case without holding them all in memory; with ``path`` None,
    ``array`` itself."""
    if path is None:
        return array
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.npy")
    try:
        np.save(partial, array)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return np.load(path, mmap_mode="r")
