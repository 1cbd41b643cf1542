"""Turn automed errors, and a failed write, into a clean one-line message and exit code 1."""

from __future__ import annotations

import errno
import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from automed.data.atomic import WRITE_ERRNOS, WriteError, output_location
from automed.errors import AutomedError

__all__ = ["clean_errors", "write_error_message"]

_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


def clean_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator: an :class:`AutomedError` becomes ``Error: <message>`` and exit status 1, and so does
    an output that could not be written (a full disk, a read-only or unwritable folder): see
    :func:`write_error_message`."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except AutomedError as exc:
            raise click.ClickException(str(exc)) from exc
        except OSError as exc:
            message = write_error_message(exc, kwargs.get("out") or kwargs.get("run_folder"), "out" in kwargs)
            if message is None:
                raise
            raise click.ClickException(message) from exc

    return wrapper


def write_error_message(exc: OSError, output: str | Path | None = None, has_out: bool = True) -> str | None:
    """One sentence for a write that failed, naming the output folder and the file, or None when ``exc``
    is not a failed write.

    Parameters
    ----------
    exc : OSError
        A :class:`automed.data.atomic.WriteError` (raised by automed's checked writes), or an error only a
        write raises (a full disk, a read-only file system) from a library that wrote on its own.
    output : path, optional
        The command's output, named when ``exc`` does not say which file it was writing.
    has_out : bool
        Whether the command writes a new output (``--out``), built hidden and renamed whole, rather than
        rewriting files of an existing folder (``automed report``).
    """
    if not isinstance(exc, WriteError) and exc.errno not in WRITE_ERRNOS:
        return None
    reason = exc.strerror or os.strerror(exc.errno or errno.EIO)
    if exc.filename:
        folder, file = output_location(exc.filename)
        writing = f" while writing {file}"
    elif output is not None:
        folder, writing = Path(output), ""
    else:
        folder, writing = Path.cwd(), ""
    # a command with --out builds its output hidden and renames it whole; one without (report) rewrites files of
    # an existing folder one by one, each whole or not at all
    kept = "nothing was written there" if has_out else "no file was left half-written"
    if exc.errno in _FULL:
        what, fix = f"the disk is full ({reason})", "free space or choose another --out" if has_out \
            else "free space and run the command again"
    elif exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        what, fix = f"cannot be written ({reason})", "make it writable or choose another --out" if has_out \
            else "make it writable and run the command again"
    else:
        what, fix = f"could not be written ({reason})", "choose another --out" if has_out else "run the command again"
    return f"{folder}: {what}{writing}; {kept}; {fix}."
