"""Command-line choices read from automed's registries when a command runs, not when it is imported."""

from __future__ import annotations

from collections.abc import Callable

import click

from automed.tasks import all_data_formats, task_names

__all__ = ["DATA_FORMATS", "TASKS"]


class Registered(click.Choice):
    """A choice among the names ``names()`` returns at the time of use: a task registered after the command
    line was imported (:func:`automed.tasks.register_task`) is a choice too."""

    def __init__(self, names: Callable[[], list[str]]) -> None:
        self._names = names
        super().__init__(())

    @property
    def choices(self) -> tuple[str, ...]:
        return tuple(self._names())

    @choices.setter
    def choices(self, value: tuple[str, ...]) -> None:
        """Ignored: the choices are the registry's (click's constructor assigns them)."""


TASKS = Registered(task_names)
DATA_FORMATS = Registered(all_data_formats)
