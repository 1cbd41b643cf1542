"""A segmentation case: the files of one subject."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["Case"]


@dataclass(frozen=True)
class Case:
    """One subject: its image file(s), one per channel, its label file and, optionally, a region of
    interest (a field of view, a brain mask) outside which nothing is learnt or scored.

    A case labelled by several raters has no ``label_path`` but each rater's mask in ``raters``
    (``(rater, file)`` pairs); its label is their ``consensus`` (:func:`automed.data.consensus.consensus_label`).
    """

    case_id: str
    image_paths: tuple[Path, ...]
    label_path: Path | None = None
    group: str | None = None
    site: str | None = None
    roi_path: Path | None = None
    raters: tuple[tuple[str, Path], ...] = ()
    consensus: str = "staple"

    @property
    def labelled(self) -> bool:
        """Whether the case has a label (one file, or its raters' masks)."""
        return self.label_path is not None or bool(self.raters)

    @property
    def label_source(self) -> Path | None:
        """The file the label's messages and saved masks name: the label file, or the first rater's mask."""
        return self.label_path if self.label_path is not None or not self.raters else self.raters[0][1]
