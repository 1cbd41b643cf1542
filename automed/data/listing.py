"""A checksum of a dataset's file listing, so a run records which data it saw."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

__all__ = ["listing_checksum"]


def listing_checksum(path: Path) -> dict[str, Any]:
    """SHA-256 of the sorted ``relative path<TAB>size`` lines of every visible file under ``path``.

    Names and sizes only: reading every byte of a CT collection would cost minutes, and a changed,
    added, removed or renamed file almost always changes one of them. Hidden files (``.DS_Store``,
    automed's own ``.``-prefixed records) are left out. Symbolic links are followed.

    Returns
    -------
    dict
        ``{"sha256", "n_files", "bytes"}``.
    """
    files = [path] if path.is_file() else sorted(
        p for p in path.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts))
    digest, total = hashlib.sha256(), 0
    for file in files:
        size = file.stat().st_size
        total += size
        name = file.name if file == path else file.relative_to(path).as_posix()
        digest.update(f"{name}\t{size}\n".encode())
    return {"sha256": digest.hexdigest(), "n_files": len(files), "bytes": total}
