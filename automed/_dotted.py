"""The object a registry names as ``"module:attribute"`` (tasks' predictors, auditors and report sections,
rungs, network architectures): named so that reading a registry imports nothing heavy."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["load_attribute"]


def load_attribute(path: str) -> Any:
    """Import the module of ``"module:attribute"`` and return the attribute."""
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)
