"""Finding the processes a command started, and waiting on a condition, for tests that kill processes."""

from __future__ import annotations

import time
from pathlib import Path

__all__ = ["tagged", "wait_until"]


def tagged(tag: str) -> list[str]:
    """Command lines of the live processes whose environment holds ``tag`` (a fit and its children)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if tag.encode() in (proc / "environ").read_bytes():
                    found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:160])
            except OSError:  # gone, or not ours to read
                pass
    return found


def wait_until(condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()
