"""Rows of the CSV files users write by hand (manifests, groups.csv), with errors that name the file."""

from __future__ import annotations

import csv
from pathlib import Path

from automed.errors import DataError

__all__ = ["read_csv_rows"]


def read_csv_rows(path: Path, required: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    """``(line number, row)`` of a CSV file with a header holding ``required``; a spreadsheet's
    byte-order mark is allowed, a repeated column name or text that is not UTF-8 is an error."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = [name.strip() for name in next(reader, [])]
            rows = list(reader)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8 CSV.") from exc
    except csv.Error as exc:
        raise DataError(f"{path}: not a readable CSV file ({exc}).") from exc
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise DataError(f"{path}: the header names the column(s) {repeated} more than once.")
    missing = [name for name in required if name not in header]
    if missing:
        raise DataError(f"{path}: no {', '.join(repr(m) for m in missing)} column; the header is {header}.")
    return [(number, dict(zip(header, row + [""] * (len(header) - len(row)))))  # short rows: empty trailing cells
            for number, row in enumerate(rows, start=2) if any(v.strip() for v in row)]
