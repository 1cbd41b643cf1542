"""How a fit is executed (where its studies and per-case work go), and the context each rung is fitted in:
one recipe for the fit and for the ``automed worker`` processes that join its searches."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable

from automed.ladder.reopen import Reopened
from automed.results import RungResult
from automed.rungs.base import FitContext

__all__ = ["Execution", "context_factory"]


@dataclass(frozen=True)
class Execution:
    """Where a fit runs besides its own process; neither changes what it fits.

    Attributes
    ----------
    storage : str or None
        Database URL of the run's Optuna studies (``--storage``; else ``$AUTOMED_STORAGE``, else
        SQLite in the run folder).
    dask : str or None
        ``"local"`` or a scheduler address (``--dask``): per-case feature extraction as Dask tasks.
    """

    storage: str | None = None
    dask: str | None = None


def context_factory(folder: Path, started: Reopened, storage: Any, progress: bool,
                    finished: tuple[RungResult, ...] = (), cluster: Any = None) -> Callable[..., FitContext]:
    """``make(folder=RUNG_FOLDER, budget_s=SECONDS)``: the context of a rung of the fit in ``folder``."""
    from automed.environment import resolve_n_jobs

    recipe, opened = started.recipe, started.opened
    return partial(FitContext, opened.dataset, opened.fingerprint, opened.splits["folds"],
                   random_state=recipe.random_state, n_jobs=resolve_n_jobs(recipe.n_jobs), optuna_storage=storage,
                   progress=progress, splits=opened.splits, cache_folder=folder / "cache", metric=recipe.metric,
                   include_background=recipe.include_background, cv=recipe.cv, max_vram_bytes=recipe.max_vram_bytes,
                   ordinal=recipe.ordinal, finished=finished, compute_peak=started.record.compute_peak,
                   cluster=cluster)
