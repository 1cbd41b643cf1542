"""A segmentation case: the files of one subject."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["Case"]


@dataclass(frozen=True)
class Case:
    """One subject: its image file(s), one per channel, its label file and, optionally, a region of
    interest (a field of view, a brain mask) outside which nothing is learnt or scored."""

    case_id: str
    image_paths: tuple[Path, ...]
    label_path: Path | None = None
    group: str | None = None
    site: str | None = None
    roi_path: Path | None = None
