"""A segmentation CSV manifest: ``image,label[,roi][,group][,site]``, one row per case.

Paths are relative to the manifest's folder (or absolute). ``roi`` is a region-of-interest
mask (field of view, brain mask) outside which nothing is learnt or scored; ``group`` keeps
the cases of one patient in one fold; ``site`` (scanner, hospital) gives per-site scores in
the report. Each image and label is listed once: twice, one case could land on both sides of
a split.
"""

from __future__ import annotations

from pathlib import Path

from automed.data.case import Case
from automed.data.csv_rows import read_csv_rows
from automed.data.io import strip_suffix
from automed.errors import DataError

__all__ = ["MANIFEST_COLUMNS", "open_manifest", "resolve_listed"]

MANIFEST_COLUMNS = ("image", "label", "roi", "group", "site")


def open_manifest(path: Path) -> list[Case]:
    """The cases listed in the manifest at ``path``.

    Raises
    ------
    DataError
        A missing column or file, an empty cell, a file listed twice, a case id twice,
        or a column automed does not read (naming the line where it matters).
    """
    rows = read_csv_rows(path, ("image", "label"))
    header = set(rows[0][1]) if rows else set()
    unknown = sorted(header - set(MANIFEST_COLUMNS))
    if unknown:
        raise DataError(f"{path}: unknown column(s) {unknown}; a segmentation manifest has {list(MANIFEST_COLUMNS)}.")
    cases, listed, case_line = [], {}, {}
    for line, row in rows:
        image, label = (resolve_listed(path, row.get(k, ""), line, k) for k in ("image", "label"))
        for column, target in (("image", image), ("label", label)):
            if target.resolve() in listed:
                raise DataError(f"{path} line {line}: {column} '{row[column]}' is already listed on line "
                                f"{listed[target.resolve()]}; list each file once.")
            listed[target.resolve()] = line
        case_id = strip_suffix(image)
        if case_id in case_line:
            raise DataError(f"{path} line {line}: the image name '{case_id}' is already the case of line "
                            f"{case_line[case_id]}; images of two cases need different names.")
        case_line[case_id] = line
        roi = resolve_listed(path, row["roi"], line, "roi") if (row.get("roi") or "").strip() else None
        cases.append(Case(case_id, (image,), label, group=(row.get("group") or "").strip() or None,
                          site=(row.get("site") or "").strip() or None, roi_path=roi))
    return cases


def resolve_listed(manifest: Path, value: str, line: int, column: str) -> Path:
    """The file a manifest cell names (relative to the manifest's folder), which must exist."""
    if not value.strip():
        raise DataError(f"{manifest} line {line}: empty {column} path.")
    target = Path(value.strip())
    target = target if target.is_absolute() else manifest.parent / target
    if not target.exists():
        raise DataError(f"{manifest} line {line}: {column} file '{value.strip()}' not found.")
    return target
