"""What each listed case weighs in a reported metric: the metric re-scored without it, and without the top k."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["TOP_K", "excluding_top", "without_each"]

TOP_K = (1, 5, 10, 20)
"""The numbers of most suspect cases whose exclusion the audit re-scores (with the number of suspects)."""
MIN_LEFT = 5
"""Fewest cases a re-scored metric keeps (fewer say nothing)."""

MetricOf = Callable[[Sequence[str]], float]
"""The reported metric over the given case ids (re-scored from the saved predictions, not refitted)."""


def without_each(scope: Sequence[str], metric_of: MetricOf) -> dict[str, float]:
    """``case id -> metric over scope without it`` for every case of ``scope``."""
    if len(scope) <= MIN_LEFT:
        return {}
    return {case: metric_of([c for c in scope if c != case]) for case in scope}


def excluding_top(scope: Sequence[str], metric_of: MetricOf, ranked: Sequence[str],
                  n_suspect: int) -> list[dict[str, Any]]:
    """The metric over ``scope`` without the ``k`` first cases of ``ranked`` that lie in it, for each k of
    :data:`TOP_K` and the number of suspects in it, while at least :data:`MIN_LEFT` cases are left."""
    in_scope = set(scope)
    ordered = [c for c in ranked if c in in_scope]
    out = [{"k": 0, "mean": metric_of(list(scope)), "n": len(scope)}]
    for k in sorted({*TOP_K, n_suspect} - {0}):
        if len(scope) - k < MIN_LEFT or k > len(ordered):
            continue
        dropped = set(ordered[:k])
        kept = [c for c in scope if c not in dropped]
        out.append({"k": k, "mean": metric_of(kept), "n": len(kept)})
    return out
