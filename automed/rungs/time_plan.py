"""How a deep rung divides its usable seconds between the Optuna search and the final training(s).

Pure arithmetic shared by the segmentation and classification planners.
"""

from __future__ import annotations

from typing import Any

__all__ = ["check_training_budget", "final_seconds", "minutes", "split_time"]


def check_training_budget(owner: str, params: Any) -> None:
    """Check the search and epoch bounds every deep rung's parameters share (``n_trials``,
    ``search_fraction``, ``min_epochs``, ``max_epochs``, ``patience_fraction``, ``lr_min``, ``lr_max``)."""
    from automed._params import check_range

    check_range(owner, "n_trials", params.n_trials, 0)
    check_range(owner, "search_fraction", params.search_fraction, 0.0, 0.9)
    check_range(owner, "min_epochs", params.min_epochs, 1)
    check_range(owner, "max_epochs", params.max_epochs, params.min_epochs)
    check_range(owner, "patience_fraction", params.patience_fraction, 0.0, 1.0)
    check_range(owner, "lr_min", params.lr_min, 1e-7)
    check_range(owner, "lr_max", params.lr_max, params.lr_min)


def split_time(usable_s: float, epoch_s: float, params: Any, overhead_s: float, shrunk: list[str],
               n_trainings: int = 1) -> tuple[int, float, float]:
    """Trials, seconds per trial and seconds per final training within ``usable_s``.

    ``params`` gives ``search_fraction``, ``n_trials``, ``min_epochs`` and ``max_epochs``; each
    trial and training costs ``overhead_s`` on top of its epochs. Fewer than two trials that fit
    means no search (the default configuration is trained). Every reduction is appended to
    ``shrunk`` as a sentence for the report.
    """
    p = params
    search_s = usable_s * p.search_fraction
    n_trials = min(p.n_trials, int(search_s // (p.min_epochs * epoch_s + overhead_s)))
    if n_trials < 2:
        if p.n_trials >= 2:
            shrunk.append(f"search dropped ({p.n_trials} trials of {p.min_epochs}+ epochs do not fit "
                          f"{minutes(search_s)}); the default configuration is trained")
        n_trials, search_s = 0, 0.0
    elif n_trials < p.n_trials:
        shrunk.append(f"trials {p.n_trials} -> {n_trials} to fit {minutes(search_s)} of search")
    final_s = (usable_s - search_s) / n_trainings
    epochs = int(min(p.max_epochs, (final_s - overhead_s) // epoch_s))
    if epochs < p.max_epochs:
        shrunk.append(f"epochs {p.max_epochs} -> about {epochs} to fit {minutes(final_s)} of final training")
    return n_trials, (search_s / n_trials if n_trials else 0.0), final_s


def minutes(seconds: float) -> str:
    """``"4.2 min"``, or hours from 90 minutes on."""
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def final_seconds(settings: dict[str, Any], search_s: float, n_trainings: int = 1) -> float:
    """Seconds for each final training once the search took ``search_s``: the plan's share, plus
    the search time it left unused or minus the time it overran (a trial may run to 1.25 x its
    share), spread over the ``n_trainings``; never below half the plan's share, so the shortest
    training still fits."""
    planned = settings["final_seconds"]
    return max(0.5 * planned, planned + (settings["n_trials"] * settings["trial_seconds"] - search_s) / n_trainings)
