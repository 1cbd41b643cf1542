"""Several annotators: the masks of each rater of a case, found in a folder per rater.

Accepted layouts (the dataset's own layout lists the images, and the main labels folder, if any):

- folders named after the labels folder with a rater's suffix, beside it: ``labelsTr_rater1/``,
  ``labelsTr_rater2/`` (MSD, nnU-Net), ``labels_anna/``, ``masks_2/`` (images/ + labels/); the labels
  folder itself, when present, is one more rater (named after it);
- any folders, named by the recipe's ``raters`` (glob patterns relative to the dataset root, e.g.
  ``experts_*/person*``; each folder is a rater named by its path), with or without a labels folder.

Every rater folder holds one mask per case, matched to the image by name as labels are; a case missing
from a rater, or a mask of no case, is an error naming the file.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from automed.data.case import Case
from automed.errors import DataError

__all__ = ["find_rater_folders", "with_raters"]


def find_rater_folders(root: Path, labels_dir: Path | None, patterns: tuple[str, ...],
                       label_names: tuple[str, ...]) -> dict[str, Path]:
    """Rater name -> folder: the folders ``patterns`` match under ``root``, or (no patterns) the folders named
    ``<labels folder>_<rater>`` (the labels folder ``labels_dir``, or where there is none any of
    ``label_names``), with ``labels_dir`` itself. Empty: one annotator.

    Raises
    ------
    DataError
        A pattern that matches no folder.
    """
    found: dict[str, Path] = {} if labels_dir is None else {labels_dir.name: labels_dir}
    if patterns:
        for pattern in patterns:
            matched = sorted(p for p in root.glob(pattern) if p.is_dir() and not p.name.startswith("."))
            if not matched:
                raise DataError(f"{root}: the rater pattern {pattern!r} matches no folder; give folders of masks "
                                "relative to the dataset root (e.g. 'experts_*/person*').")
            found.update({p.relative_to(root).as_posix(): p for p in matched if p != labels_dir})
        return found
    prefixes = [labels_dir.name] if labels_dir is not None else list(label_names)
    for prefix in prefixes:
        found.update({p.name[len(prefix) + 1:]: p for p in sorted(root.iterdir())
                      if p.is_dir() and p.name.startswith(prefix + "_") and len(p.name) > len(prefix) + 1})
    return found if len(found) > 1 or labels_dir is None else {}


def with_raters(cases: tuple[Case, ...], folders: dict[str, Path], consensus: str) -> tuple[Case, ...]:
    """``cases`` with each rater's mask (``Case.raters``) and the ``consensus`` their label is made by.

    Raises
    ------
    DataError
        A rater folder without a mask of a case, with a mask of no case, or two masks of one case;
        fewer than two raters; a ``rater:NAME`` consensus naming no rater.
    """
    from automed.data.dataset import files_by_stem, visible_entries
    from automed.data.pairing import pair_by_name

    if len(folders) < 2:
        raise DataError(f"{next(iter(folders.values()), 'the dataset')}: one rater folder; several annotators need two "
                        "or more (one folder each).")
    if consensus.startswith("rater:") and consensus[len("rater:"):] not in folders:
        raise DataError(f"The consensus {consensus!r} names no rater of this dataset; its raters are "
                        f"{sorted(folders)}.")
    images = {c.case_id: c.image_paths[0] for c in cases}
    masks = {name: pair_by_name(images, files_by_stem(visible_entries(folder)), folder, f"mask of rater '{name}'")
             for name, folder in folders.items()}
    return tuple(replace(c, label_path=None, raters=tuple((name, masks[name][c.case_id]) for name in folders),
                         consensus=consensus) for c in cases)
