"""Rungs of the ladder by name: each task's ``rungs`` (:class:`automed.tasks.base.Task`) is the registry.

An entry is ``"module:Class"``, or ``("module:Class", settings)`` for a rung that is a
configuration of a shared implementation: the settings become class attributes of a
subclass made here, so e.g. ``unet3d`` is data, not a module. Rung modules import only
light packages at module level so that reading a recipe never imports torch or LightGBM.

What every rung shares is here (:mod:`~automed.rungs.base`: the protocol; :mod:`~automed.rungs.records`,
:mod:`~automed.rungs.fitted`, :mod:`~automed.rungs.time_plan`, :mod:`~automed.rungs.ensemble`); each task's
rungs are a sub-package named after it (:mod:`automed.rungs.segmentation`, :mod:`automed.rungs.classification`).
"""

from __future__ import annotations

from functools import lru_cache

from automed._dotted import load_attribute
from automed.errors import RecipeError

__all__ = ["rung_class"]

def rung_class(name: str, task: str) -> type:
    """The rung class registered as ``name`` for ``task``."""
    from automed.tasks import get_task

    known = get_task(task).rungs
    if name not in known:
        raise RecipeError(f"Unknown rung {name!r} for task '{task}'; known rungs are {sorted(known)}.")
    return _made(task, name)


@lru_cache(maxsize=None)
def _made(task: str, name: str) -> type:
    """The class of a registry entry (one class per entry, so it compares equal across calls)."""
    from automed.tasks import get_task

    entry = get_task(task).rungs[name]
    path, settings = entry if isinstance(entry, tuple) else (entry, None)
    base = load_attribute(path)
    if settings is None:
        return base
    return type(base.__name__, (base,), {"name": name, "__module__": base.__module__, **settings,
                                          "__doc__": f"Rung ``{name}``: {base.__name__} with {settings}."})
