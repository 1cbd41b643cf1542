"""Worker processes that end with the fit that started them.

joblib's loky workers and their resource tracker outlive a parent killed with SIGKILL
(no Python code runs to stop them), so every process pool automed starts goes through
:func:`process_pool`, whose workers ask the kernel to kill them when their parent dies.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["process_pool"]

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


@contextmanager
def process_pool() -> Iterator[None]:
    """Context in which ``joblib.Parallel`` uses loky workers bound to this process.

    Only automed's own per-case jobs run inside it: a library call that prefers threads
    (e.g. scikit-learn's forest fitting) must stay outside, as the context forces processes.
    """
    from joblib import parallel_config

    with parallel_config(backend="loky", initializer=_die_with_parent, initargs=(os.getpid(),)):
        yield


def _die_with_parent(parent_pid: int) -> None:
    """Worker initializer: on Linux, SIGKILL this worker when its parent process dies."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before the request was made
        os._exit(1)
