"""A rung's records, each written in one place and read in one place: its fitted model's
(``model.json``, ``ensemble.json``) and its plan (``plan.json``, which a resumed fit follows).

The model record carries the automed version that wrote it, and its parameters are read back
through the rung's own ``Params`` validation, so a record from another version or edited
by hand fails with a :class:`~automed.errors.RunFolderError` naming the file and the
version instead of a ``TypeError`` deep inside a rung.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from automed._jsonio import write_json
from automed._params import from_mapping, to_mapping
from automed.environment import automed_version
from automed.errors import RecipeError, RunFolderError
from automed.rungs.base import RungPlan

__all__ = ["read_record", "save_plan", "saved_plan", "write_record"]

PLAN = "plan.json"


def write_record(path: Path, params: Any, **fields: Any) -> None:
    """Write ``fields`` and the rung's ``params`` (a dataclass) to ``path``, atomically."""
    write_json(path, {"automed": automed_version(), "params": to_mapping(params), **fields})


def read_record(path: Path, params_class: type, required: tuple[str, ...] = ()) -> tuple[Any, dict[str, Any]]:
    """The validated ``params_class`` instance and the record's fields.

    Raises
    ------
    RunFolderError
        If the file is missing, is not JSON, lacks a ``required`` field, or holds parameters
        ``params_class`` rejects.
    """
    written_by = "an unknown version"
    try:
        record = json.loads(path.read_text())
        written_by = f"automed {record.get('automed') or 'before 0.1.0'}"
        missing = [key for key in ("params", *required) if key not in record]
        if missing:
            raise RunFolderError(f"{path}: written by {written_by}, lacks {missing}; this is automed "
                                 f"{automed_version()}. Refit the run.")
        return from_mapping(params_class, record["params"], "params"), record
    except FileNotFoundError as exc:
        raise RunFolderError(f"{path}: missing; the run folder is damaged.") from exc
    except RecipeError as exc:  # a ValueError too: caught first
        raise RunFolderError(f"{path}: written by {written_by}, holds parameters this automed ({automed_version()}) "
                             f"rejects: {exc}. Refit the run.") from exc
    except (ValueError, AttributeError) as exc:
        raise RunFolderError(f"{path}: not a readable record ({exc}); the run folder is damaged.") from exc


def save_plan(folder: Path, plan: RungPlan) -> None:
    """Keep ``plan`` in the rung's ``folder``, atomically, for a resumed fit to follow."""
    write_json(folder / PLAN, {"automed": automed_version(), **asdict(plan)})


def saved_plan(folder: Path) -> RungPlan | None:
    """The plan an interrupted fit of this rung made (None when there is none).

    Raises
    ------
    RunFolderError
        If ``plan.json`` is not a plan this automed reads.
    """
    path = folder / PLAN
    if not path.is_file():
        return None
    try:
        values = json.loads(path.read_text())
        values.pop("automed", None)
        return RungPlan(**values)
    except (ValueError, TypeError, AttributeError) as exc:
        raise RunFolderError(f"{path}: not a plan this automed ({automed_version()}) reads ({exc}); delete it to plan the "
                             f"rung again.") from exc
