"""Optuna helpers shared by the rungs' searches."""

from __future__ import annotations

import time
from typing import Any, Callable

__all__ = ["optimize_within"]


def optimize_within(study: Any, objective: Callable[[Any], float], n_trials: int, timeout_s: float | None,
                    progress: bool = False) -> None:
    """``study.optimize`` that also starts no trial the last one says cannot finish by ``timeout_s``.

    Optuna's own ``timeout`` only stops *starting* trials after the deadline, so a slow trial
    begun just before it overruns by a whole trial (seen: a 115 s search taking 6 min).
    """
    started = time.monotonic()

    def stop_before_overrun(study: Any, trial: Any) -> None:
        if trial.duration is not None and time.monotonic() - started + trial.duration.total_seconds() > timeout_s:
            study.stop()

    study.optimize(objective, n_trials=n_trials, timeout=timeout_s, show_progress_bar=progress,
                   callbacks=None if timeout_s is None else [stop_before_overrun])
