"""JSON files of a run folder: written atomically, NaN/Inf as null, numpy scalars as numbers."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from automed.data.atomic import write_text

__all__ = ["write_json"]


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
