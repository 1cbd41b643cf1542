"""JSON files of a run folder: written atomically, NaN/Inf as null, numpy scalars as numbers."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from automed.data.atomic import write_text

__all__ = ["flat_with_extra", "from_flat_with_extra", "write_json"]


def write_json(path: Path, value: Any) -> None:
    """Write ``value`` as JSON atomically and checked (a kill or a full disk never leaves half a file;
    see :func:`automed.data.atomic.write_text`); NaN/Inf become null."""
    write_text(path, json.dumps(_finite(value), indent=2, allow_nan=False, default=_jsonable))


def _finite(value: Any) -> Any:
    """NaN/Inf (e.g. an undefined HD95) become JSON null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _jsonable(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def flat_with_extra(record: Any) -> dict[str, Any]:
    """A dataclass record with an ``extra`` dict as one flat dict: its fields, then ``extra``'s entries beside them."""
    from dataclasses import asdict

    values = asdict(record)
    return {**{k: v for k, v in values.items() if k != "extra"}, **values["extra"]}


def from_flat_with_extra(cls: type, values: dict[str, Any]) -> Any:
    """Inverse of :func:`flat_with_extra`: the entries that are not fields of ``cls`` go to ``extra``."""
    from dataclasses import fields

    known = {f.name for f in fields(cls)} - {"extra"}
    return cls(**{k: v for k, v in values.items() if k in known},
               extra={k: v for k, v in values.items() if k not in known})
