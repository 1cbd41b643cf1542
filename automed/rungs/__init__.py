"""Rungs of the ladder. Each rung is one module; register it in ``REGISTRY``.

Rung modules import only light packages at module level so that reading a recipe
never imports torch or LightGBM.
"""

from __future__ import annotations

import importlib

from automed.errors import RecipeError

__all__ = ["REGISTRY", "rung_class"]

REGISTRY = {
    "classical": "automed.rungs.classical:ClassicalRung",
}


def rung_class(name: str) -> type:
    """The rung class registered as ``name``."""
    if name not in REGISTRY:
        raise RecipeError(f"Unknown rung {name!r}; known rungs are {sorted(REGISTRY)}.")
    module, _, attr = REGISTRY[name].partition(":")
    return getattr(importlib.import_module(module), attr)
