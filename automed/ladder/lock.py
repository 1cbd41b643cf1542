"""The lock of a run folder: one process fits a run at a time, and nothing reads a run being fitted.

A fit of ``runs/x`` (new, ``--overwrite``, ``--resume`` or ``--replay`` into it) holds an
exclusive ``fcntl.flock`` on ``runs/.x.lock`` for its whole life. The kernel releases the lock
when the process ends, however it ends (a SIGKILL included), so a lock is never left behind by
a dead fit: that is why an OS lock is used rather than a file whose presence is the lock. The
file's JSON content (pid, host, start time, command line) only words the message a second
process gets; the holder is taken for alive only if, on this host, a process with its pid and
start time still runs (:func:`holder_alive`; psutil, so a reused pid is not mistaken for it).

Forked children (data-loader or joblib workers) would inherit the locked file description
and keep the lock after their parent dies; they close it as they start (``os.register_at_fork``).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from automed.errors import RunFolderError

__all__ = ["holder_alive", "lock_path", "refuse_if_locked", "run_lock"]

_ATTEMPTS = 3
_HELD: set[int] = set()
"""Descriptors of the locks this process holds; closed in forked children."""


def _close_in_child() -> None:
    for fd in _HELD:
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD.clear()


os.register_at_fork(after_in_child=_close_in_child)


def lock_path(out: Path) -> Path:
    """The lock file of the run folder ``out``: ``.<out>.lock`` beside it."""
    return out.parent / f".{out.name}.lock"


@contextmanager
def run_lock(out: str | Path) -> Iterator[None]:
    """Hold the lock of the run folder ``out`` for the block (its parent folder is created if needed).

    Raises
    ------
    RunFolderError
        If another live process holds it; the message names that process.
    """
    out = Path(out)
    path = lock_path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = _acquire(out, path)
    _HELD.add(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(_me()).encode(), 0)
        yield
    finally:
        _HELD.discard(fd)
        path.unlink(missing_ok=True)  # while still locked: a waiting process then finds a new file (see _acquire)
        os.close(fd)


def refuse_if_locked(out: str | Path) -> None:
    """Raise if a live process holds the lock of the run folder ``out`` (for readers: predict, export, replay)."""
    out = Path(out)
    path = lock_path(out)
    if not path.is_file():
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        if not _try_flock(fd, fcntl.LOCK_SH):
            raise RunFolderError(_busy_message(out, _read_holder(path)))
    finally:
        os.close(fd)


def holder_alive(holder: dict[str, Any]) -> bool:
    """Whether the process a lock file records still runs: on this host, its pid exists and started
    when recorded (a reused pid does not count); on another host it is taken as alive."""
    import psutil

    if holder.get("host") != socket.gethostname():
        return True
    try:
        return abs(psutil.Process(int(holder["pid"])).create_time() - float(holder["create_time"])) < 1.0
    except (psutil.Error, KeyError, TypeError, ValueError):
        return False


def _acquire(out: Path, path: Path) -> int:
    """An open descriptor of ``path`` holding its exclusive lock."""
    busy = 0
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if not _try_flock(fd, fcntl.LOCK_EX):
            os.close(fd)
            busy += 1
            if busy == _ATTEMPTS:
                raise RunFolderError(_busy_message(out, _read_holder(path)))
            time.sleep(0.1)  # a reader's shared lock (refuse_if_locked) lasts microseconds
            continue
        try:  # the holder we waited on may have removed the file after we opened it: lock the new one
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def _try_flock(fd: int, kind: int) -> bool:
    """Take a ``flock`` of ``kind`` without waiting; False when another process holds it."""
    try:
        fcntl.flock(fd, kind | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def _me() -> dict[str, Any]:
    import psutil

    from automed.environment import command_line

    return {"pid": os.getpid(), "host": socket.gethostname(), "create_time": psutil.Process().create_time(),
            "started": time.time(), "command": command_line()}


def _read_holder(path: Path) -> dict[str, Any]:
    """The holder a lock file records (empty when it cannot be read: being written, or not ours)."""
    try:
        holder = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _busy_message(out: Path, holder: dict[str, Any]) -> str:
    """One sentence naming the process that holds the lock of ``out``."""
    if not holder:
        who = "another process"
    elif not holder_alive(holder):
        return (f"{out}: the fit by process {holder.get('pid')} has ended, but a process it started still holds the "
                f"lock {lock_path(out)}; stop that process (see `fuser {lock_path(out)}`) and try again.")
    else:
        started = time.strftime("%Y-%m-%d %H:%M", time.localtime(float(holder.get("started") or 0)))
        command = str(holder.get("command") or "automed fit")
        command = command if len(command) <= 80 else command[:77] + "..."
        who = f"process {holder.get('pid')} ({command}, started {started} on host {holder.get('host')})"
    return f"{out}: is being fitted by {who}; wait for it to end or stop it."
