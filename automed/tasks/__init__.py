"""Tasks registered by name: what a recipe's ``task`` means (see :class:`automed.tasks.base.Task`).

>>> get_task("segmentation").metrics
('dice',)
"""

from __future__ import annotations

from automed.errors import RecipeError
from automed.tasks.base import Opened, Prepared, Task
from automed.tasks.classification import Classification
from automed.tasks.registration import Registration
from automed.tasks.segmentation import Segmentation

__all__ = ["Opened", "Prepared", "Task", "get_task", "register_task", "all_data_formats", "task_names", "unregister_task"]

_TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    """Make ``task`` known by its ``name`` (a later registration under the same name replaces it)."""
    if not isinstance(task, Task):
        raise TypeError(f"register_task takes a Task instance; got {task!r}.")
    _TASKS[task.name] = task
    return task


def unregister_task(name: str) -> None:
    """Forget the task registered as ``name`` (a task defined for a test or a session); unknown names are an error."""
    get_task(name)
    del _TASKS[name]


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


def all_data_formats() -> list[str]:
    """Every registered task's dataset layouts, ``auto`` first, each once."""
    return list(dict.fromkeys(f for task in _TASKS.values() for f in task.data_formats))


register_task(Segmentation())
register_task(Classification())
register_task(Registration())
