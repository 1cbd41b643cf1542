"""automed: AutoML for medical images. Classical baseline first, deep learning only where it pays.

Importing automed is cheap: heavy libraries load only when used.
"""

from __future__ import annotations

import os
from importlib import import_module
from typing import Any

# OpenMP threads (LightGBM, scikit-learn) busy-wait by default; when the cores are shared
# with another process that makes LightGBM 4-20x slower (measured on 2 cores). Passive
# waiting costs nothing when the machine is idle. A value the user set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__all__ = ["Recipe", "Run", "fit", "load", "replay"]
__version__ = "0.1.0"

_LAZY = {"Recipe": "automed.recipe", "Run": "automed.run", "fit": "automed.run", "load": "automed.run",
         "replay": "automed.run"}


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'automed' has no attribute {name!r}")
