"""The listing of a dataset's files (names and sizes) and its checksum, so a run records which data it saw
and a resumed fit can tell that the data changed since it started."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

__all__ = ["dataset_listing", "listing_change", "listing_checksum"]


def dataset_listing(path: Path) -> dict[str, int]:
    """``{relative path: size in bytes}`` of every visible file under ``path`` (``path`` itself when a file).

    Names and sizes only: reading every byte of a CT collection would cost minutes, and a changed,
    added, removed or renamed file almost always changes one of them. Hidden files (``.DS_Store``,
    automed's own ``.``-prefixed records) are left out. Symbolic links are followed.
    """
    if path.is_file():
        return {path.name: path.stat().st_size}
    files = sorted(p for p in path.rglob("*")
                   if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts))
    return {file.relative_to(path).as_posix(): file.stat().st_size for file in files}


def listing_checksum(path: Path, listing: dict[str, int] | None = None) -> dict[str, Any]:
    """SHA-256 of the ``relative path<TAB>size`` lines, sorted by path, of :func:`dataset_listing` (``listing``
    when given, else read from ``path``).

    Returns
    -------
    dict
        ``{"sha256", "n_files", "bytes"}``.
    """
    listing = dataset_listing(path) if listing is None else listing
    digest = hashlib.sha256()
    for name in sorted(listing, key=lambda n: n.split("/")):  # the order of sorted paths, as runs recorded it
        digest.update(f"{name}\t{listing[name]}\n".encode())
    return {"sha256": digest.hexdigest(), "n_files": len(listing), "bytes": sum(listing.values())}


def listing_change(recorded: dict[str, int], current: dict[str, int]) -> str | None:
    """The first difference between two listings, as words (``None`` when they are the same)."""
    for name in sorted(set(recorded) | set(current)):
        if name not in current:
            return f"{name} was removed"
        if name not in recorded:
            return f"{name} was added"
        if recorded[name] != current[name]:
            return f"{name} was changed ({recorded[name]} bytes, now {current[name]})"
    return None
