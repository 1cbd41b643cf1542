"""Pair image files with their mask files by name, as users really name them.

In order, a mask pairs with the image of:

1. the same name (``case_01.png`` with ``case_01.png``);
2. its name less a common mask suffix (``IMD002_lesion.png`` with ``IMD002.png``;
   ``_mask``, ``_seg``, ``_segmentation``, ``_lesion``, ``_label``, ... after ``_`` or ``-``);
3. the same leading case id (``07_expert.gif`` with ``07_scan.tif``), where no other image
   or mask has that id.

Anything ambiguous (two masks for one image, two images with one id) is an error that lists
the candidates, never a guess.
"""

from __future__ import annotations

import re
from pathlib import Path

from automed.errors import DataError

__all__ = ["MASK_SUFFIXES", "pair_by_name"]

MASK_SUFFIXES = ("mask", "masks", "seg", "segmentation", "lesion", "label", "labels", "gt", "groundtruth",
                 "ground_truth", "manual", "manual1", "annotation", "expert", "roi")
_SUFFIX = re.compile(rf"^(?P<base>.+?)[_-](?:{'|'.join(sorted(MASK_SUFFIXES, key=len, reverse=True))})$",
                     re.IGNORECASE)
_LEADING_ID = re.compile(r"^([A-Za-z]*\d+)(?=$|[_\-. ])")


def pair_by_name(images: dict[str, Path], masks: dict[str, Path], masks_dir: Path,
                 kind: str = "label") -> dict[str, Path]:
    """Case id (the image's name) -> its mask, for every image in ``images`` (name -> file).

    ``kind`` names the masks in error messages (``"label"``, ``"ROI"``).

    Raises
    ------
    DataError
        A mask matching two images or an image matched by two masks (the message lists
        them), an image without mask or a mask without image.
    """
    pairs: dict[str, Path] = {}
    claims: dict[str, list[Path]] = {}
    for stem, mask in masks.items():
        if stem in images:
            claims.setdefault(stem, []).append(mask)
            continue
        match = _SUFFIX.match(stem)
        base = match["base"] if match else None
        if base in images:
            claims.setdefault(base, []).append(mask)
    for image_stem, found in claims.items():
        if len(found) > 1:
            raise DataError(f"{images[image_stem]}: {len(found)} masks match this image "
                            f"({', '.join(sorted(m.name for m in found))}); keep one of them.")
        pairs[image_stem] = found[0]
    used = set(pairs.values())
    left_images = {s: p for s, p in images.items() if s not in pairs}
    left_masks = {s: p for s, p in masks.items() if p not in used}
    pairs.update(_by_leading_id(left_images, left_masks))
    used = set(pairs.values())
    for stem in sorted(set(images) - set(pairs)):
        raise DataError(f"{images[stem]}: image without {kind} (no file in {masks_dir} named '{stem}', "
                        f"'{stem}_mask', '{stem}_lesion', ... or with its leading case id).")
    for mask in sorted(set(masks.values()) - used):
        raise DataError(f"{mask}: {kind} without image (no image of that name, of that name less a mask suffix "
                        "such as _mask, or with its leading case id).")
    return pairs


def _by_leading_id(images: dict[str, Path], masks: dict[str, Path]) -> dict[str, Path]:
    """Pairs of the images and masks left over that share a leading case id no other file has."""
    if not images or not masks:
        return {}
    by_id_images: dict[str, list[str]] = {}
    by_id_masks: dict[str, list[Path]] = {}
    for stem in images:
        if (match := _LEADING_ID.match(stem)) is not None:
            by_id_images.setdefault(match[1].lower(), []).append(stem)
    for stem, mask in masks.items():
        if (match := _LEADING_ID.match(stem)) is not None:
            by_id_masks.setdefault(match[1].lower(), []).append(mask)
    pairs = {}
    for case_id, stems in by_id_images.items():
        found = by_id_masks.get(case_id, [])
        if not found:
            continue
        if len(stems) > 1 or len(found) > 1:
            names = sorted(images[s].name for s in stems) + sorted(m.name for m in found)
            raise DataError(f"{images[stems[0]].parent}: case id '{case_id}' leads the names of {', '.join(names)}, "
                            "so which mask belongs to which image is ambiguous; rename them so each mask is "
                            "named after its image (e.g. IMAGE_mask.png).")
        pairs[stems[0]] = found[0]
    return pairs
