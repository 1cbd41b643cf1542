"""Turn automed errors into a clean one-line message and exit code 1."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from automed.errors import AutomedError


def clean_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator: an :class:`AutomedError` becomes ``Error: <message>`` and exit status 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except AutomedError as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper
