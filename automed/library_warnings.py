"""Warnings that libraries raise during a rung's fit, logged once each with a count instead of printed in hundreds.

A search fits hundreds of models; a scikit-learn ``ConvergenceWarning`` or a LightGBM notice would otherwise
fill the terminal with the same line. :func:`logged_once` records them, logs each distinct one once to the
``automed`` logger (so to ``automed.log``), and gives the counts for the rung's result.
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["logged_once"]

log = logging.getLogger("automed")


@contextmanager
def logged_once(where: str) -> Iterator[list[dict[str, Any]]]:
    """Record the warnings raised in the block; on leaving it, log each distinct one once, prefixed by ``where``.

    Yields
    ------
    list of dict
        Filled on exit with ``{"category", "message", "count"}`` per distinct warning, most frequent first.
    """
    summary: list[dict[str, Any]] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for quiet in (DeprecationWarning, PendingDeprecationWarning):  # for library authors, as Python's defaults say
            warnings.simplefilter("ignore", quiet)
        try:
            yield summary
        finally:
            counts = Counter((w.category.__name__, str(w.message).strip().splitlines()[0] if str(w.message).strip()
                              else "") for w in caught)
            for (category, message), count in counts.most_common():
                summary.append({"category": category, "message": message, "count": count})
                log.info("%s: %s: %s%s", where, category, message, f" ({count} times)" if count > 1 else "")
