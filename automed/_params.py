"""Build frozen parameter dataclasses from plain mappings, rejecting unknown keys.

Shared by :mod:`automed.recipe` and every rung's parameter schema so that all
configuration errors read the same way.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping
from typing import Any, TypeVar

from automed.errors import RecipeError

__all__ = ["check_choice", "check_range", "from_mapping", "shown", "to_mapping"]

T = TypeVar("T")


def from_mapping(cls: type[T], values: Mapping[str, Any] | None, where: str) -> T:
    """Instantiate dataclass ``cls`` from ``values``.

    Parameters
    ----------
    cls : type
        A frozen dataclass.
    values : mapping or None
        Field values; missing fields take their defaults.
    where : str
        Where the mapping came from, used in error messages (e.g. ``"rung 'classical'"``).

    Raises
    ------
    RecipeError
        If a key is not a field of ``cls`` or a value is rejected by the class.
    """
    if values is not None and not isinstance(values, Mapping):
        as_written = list(values) if isinstance(values, tuple) else values  # a YAML list arrives as a tuple
        raise RecipeError(f"{where}: expected a mapping of parameter names to values (YAML 'key: value' lines), "
                          f"got {type(as_written).__name__} {shown(as_written)}.")
    values = dict(values or {})
    fields = set(inspect.signature(cls).parameters)  # the fields __init__ takes, InitVar aliases included
    unknown = sorted(set(values) - fields)
    if unknown:
        raise RecipeError(
            f"{where}: unknown key(s) {unknown}; allowed keys are {sorted(fields)}."
        )
    listed = {f.name for f in dataclasses.fields(cls) if isinstance(f.default, tuple)
              or (f.default_factory is not dataclasses.MISSING and isinstance(f.default_factory(), tuple))}
    for key in sorted(listed & set(values)):
        if isinstance(values[key], (str, bytes, Mapping)):
            raise RecipeError(f"{where}: the '{key}' parameter must be a list, e.g. [{values[key]}] "
                              f"(YAML: '{key}: [{values[key]}]'). Got {shown(values[key])} instead.")
    converted = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    try:
        return cls(**converted)
    except TypeError as exc:
        raise RecipeError(f"{where}: {exc}") from exc


def to_mapping(obj: Any) -> dict[str, Any]:
    """Plain, YAML-friendly dict of a (nested) dataclass: tuples become lists."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (tuple, list)):
            return [plain(v) for v in value]
        if isinstance(value, Mapping):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(obj)


def check_choice(owner: str, name: str, value: Any, choices: tuple) -> None:
    """Raise the standard error if ``value`` is not one of ``choices``."""
    if value not in choices:
        raise RecipeError(
            f"The '{name}' parameter of {owner} must be one of {list(choices)}. "
            f"Got {shown(value)} instead."
        )


def check_range(owner: str, name: str, value: Any, low: float, high: float | None = None) -> None:
    """Raise the standard error if ``value`` is not a number in ``[low, high]``."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok and value >= low and (high is None or value <= high)
    if not ok:
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise RecipeError(
            f"The '{name}' parameter of {owner} must be a number {bound}. Got {shown(value)} instead."
        )


def shown(value: Any) -> str:
    """``repr`` of ``value`` as a user wrote it: numpy scalars print as ``1.5``, not ``np.float64(1.5)``."""
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        value = value.item()
    return repr(value)
