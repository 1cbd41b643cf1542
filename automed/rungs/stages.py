"""The wall seconds of a rung's stages, so its report entry says where its time went."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["Stages"]


class Stages:
    """Wall seconds per named stage of a fit, in the order the stages first ran.

    >>> stages = Stages()
    >>> with stages("search"):
    ...     pass
    >>> list(stages.seconds)
    ['search']
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        """Add the seconds spent inside the block to ``stage``."""
        start = time.monotonic()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.monotonic() - start
