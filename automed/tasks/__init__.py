"""Tasks registered by name: what a recipe's ``task`` means (see :class:`automed.tasks.base.Task`).

>>> get_task("segmentation").metrics
('dice',)
"""

from __future__ import annotations

from automed.errors import RecipeError
from automed.tasks.base import Opened, Prepared, Task
from automed.tasks.classification import Classification
from automed.tasks.segmentation import Segmentation

__all__ = ["Opened", "Prepared", "Task", "get_task", "register_task", "task_names"]

_TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    """Make ``task`` known by its ``name`` (a later registration under the same name replaces it)."""
    if not isinstance(task, Task):
        raise TypeError(f"register_task takes a Task instance; got {task!r}.")
    _TASKS[task.name] = task
    return task


def get_task(name: str) -> Task:
    """The task registered as ``name``.

    Raises
    ------
    RecipeError
        No task is registered under ``name``: never a fall-through to another task.
    """
    if not isinstance(name, str) or name not in _TASKS:
        raise RecipeError(f"Unknown task {name!r}; the tasks are {task_names()}.")
    return _TASKS[name]


def task_names() -> list[str]:
    """The registered tasks' names, in registration order."""
    return list(_TASKS)


register_task(Segmentation())
register_task(Classification())
