"""Checked writes: every file and folder automed writes appears whole or not at all.

A file is written to a hidden temporary sibling, checked (not empty; and, after a writer that
does not report a full disk, such as SimpleITK's NIfTI writer, a disk not left full), flushed
to disk (fsync) and renamed into place. A folder is built in a hidden sibling whose files are
checked the same way before it is renamed into place. A failure removes what was written and
is raised as :class:`WriteError`, an ``OSError`` whose ``filename`` is where the output was to
go (never a temporary name), so :mod:`automed.cli._errors` can say in one sentence which
folder could not be written and why.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["WRITE_ERRNOS", "WriteError", "file_written_atomically", "folder_written_atomically", "output_location",
           "refuse_unwritable", "write_bytes", "write_failure", "write_text"]

_HIDDEN_PARTIAL = re.compile(r"^\.(?P<name>.+)\.partial(?:-[0-9a-f]{8})?$")
"""A hidden folder a fit, a prediction or an export is built in (``.<name>.partial[-<hex>]``)."""
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})
"""Reasons only a write fails for: the disk is full (or the quota used up), the file system is read-only."""


class WriteError(OSError):
    """An output could not be written: ``errno`` says why, ``filename`` is where it was to go."""


def write_bytes(path: Path, content: bytes) -> None:
    """Write ``content`` to ``path`` atomically and checked (see :func:`file_written_atomically`)."""
    with file_written_atomically(path) as tmp:
        tmp.write_bytes(content)


def write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically and checked."""
    write_bytes(path, text.encode())


@contextmanager
def file_written_atomically(path: Path, trusted: bool = True) -> Iterator[Path]:
    """A temporary sibling of ``path`` (same extension, so a library picks the same format) to write
    into; when the block ends it is checked, fsynced and renamed to ``path``.

    Parameters
    ----------
    path : Path
        The file to write.
    trusted : bool
        ``False`` for a writer that may not report a full disk (SimpleITK): the file then also fails
        when the disk is left full after it, since such a writer stops silently mid-file.

    Raises
    ------
    WriteError
        The file could not be written whole; nothing is left at ``path`` or beside it.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.partial-{uuid.uuid4().hex[:8]}{''.join(path.suffixes[-2:])}")
    try:
        yield tmp
        _check(tmp, trusted)
        os.replace(tmp, path)
        _fsync_folder(path.parent)
    except OSError as exc:
        raise write_failure(exc, path) from exc
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def folder_written_atomically(folder: Path) -> Iterator[Path]:
    """A hidden sibling of ``folder`` to write into; when the block ends without an error its files are
    checked and fsynced and it replaces ``folder`` (an existing one is moved aside, then removed), and
    after an error it is removed, so a reader never sees a half-written folder.

    Raises
    ------
    WriteError
        A file could not be written whole (named as it would have been in ``folder``); ``folder`` is
        left as it was.
    """
    folder = Path(folder)
    partial = folder.parent / f".{folder.name}.partial-{uuid.uuid4().hex[:8]}"
    try:
        partial.mkdir(parents=True)
    except OSError as exc:
        raise write_failure(exc, folder) from exc
    try:
        yield partial
        for file in sorted(p for p in partial.rglob("*") if p.is_file()):
            _check(file, trusted=True)
        _fsync_folder(partial)
        if folder.exists():
            old = folder.parent / f".{folder.name}.old-{uuid.uuid4().hex[:8]}"
            folder.rename(old)
            partial.rename(folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            partial.rename(folder)
        _fsync_folder(folder.parent)
    except OSError as exc:
        shutil.rmtree(partial, ignore_errors=True)
        where = Path(exc.filename) if exc.filename else None
        if where is not None and where.is_relative_to(partial):
            raise write_failure(exc, folder / where.relative_to(partial)) from exc
        if where is None and (exc.errno in WRITE_ERRNOS or _folder_problem(folder.parent)):
            raise write_failure(exc, folder) from exc
        raise  # an error of another file (an input), not of this output
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def write_failure(exc: BaseException, path: Path) -> WriteError:
    """``exc``, raised while writing ``path``, as a :class:`WriteError` naming ``path``; an error that does
    not say why (SimpleITK's ``RuntimeError``, numpy's ``OSError`` without ``errno``) gets the reason
    read from the folder's file system (full, read-only, not writable) when there is one."""
    if isinstance(exc, WriteError) and exc.filename == str(path):
        return exc
    code = exc.errno if isinstance(exc, OSError) and exc.errno else _folder_problem(path.parent)
    if code is None:  # say what the writer said: its last line naming an error (SimpleITK's are many lines)
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
        said = next((line for line in reversed(lines) if "ERROR" in line or "Reason" in line), lines[-1])
        return WriteError(errno.EIO, f"{os.strerror(errno.EIO)}: {said[:200]}", str(path))
    said = exc.strerror if isinstance(exc, OSError) and exc.errno == code and exc.strerror else os.strerror(code)
    return WriteError(code, said, str(path))


def output_location(path: str | Path) -> tuple[Path, str]:
    """The output folder a user knows ``path`` by and the file's name inside it: a file inside the
    hidden folder an output is built in (``.<name>.partial``) is named inside ``<name>``."""
    path = Path(path)
    for i, part in enumerate(path.parts[:-1]):
        match = _HIDDEN_PARTIAL.match(part)
        if match:
            return Path(*path.parts[:i], match["name"]), str(Path(*path.parts[i + 1:]))
    return path.parent, path.name


def refuse_unwritable(path: Path) -> None:
    """Raise :class:`WriteError` naming ``path`` when the nearest existing folder it would be written in is on
    a full or read-only file system, or not writable: checked before work whose output could not be kept."""
    path = Path(path)
    folder = next((p for p in path.absolute().parents if p.is_dir()), None)
    code = None if folder is None else _folder_problem(folder)
    if code is not None:
        raise WriteError(code, os.strerror(code), str(path))


def _check(file: Path, trusted: bool) -> None:
    """Raise unless ``file`` is written whole; fsync it."""
    problem = None if trusted else _folder_problem(file.parent)
    if problem or file.stat().st_size == 0:
        code = problem or _folder_problem(file.parent) or errno.EIO
        raise OSError(code, os.strerror(code) if code != errno.EIO else "the file was written empty", str(file))
    handle = os.open(file, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _folder_problem(folder: Path) -> int | None:
    """``errno`` of what stops writes into ``folder`` now (a full or read-only file system, no write
    permission), or None."""
    try:
        stats = os.statvfs(folder)
    except OSError:
        return None
    if stats.f_flag & os.ST_RDONLY:
        return errno.EROFS
    if stats.f_bavail == 0 and stats.f_blocks > 0:
        return errno.ENOSPC
    if not os.access(folder, os.W_OK):
        return errno.EACCES
    return None


def _fsync_folder(folder: Path) -> None:
    """Flush ``folder``'s entries (a rename in it) to disk."""
    handle = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)
