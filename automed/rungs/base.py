"""The protocol every rung implements, and what the runner hands it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar


__all__ = ["FitContext", "Rung", "RungOutcome"]


@dataclass(frozen=True)
class FitContext:
    """Everything a rung needs to fit, prepared by the runner.

    Attributes
    ----------
    folder : Path
        The rung's own folder in the run, for its model and predictions.
    folds : list of dict
        ``[{"train": [case ids], "val": [case ids]}, ...]`` shared by every rung.
    budget_s : float or None
        Wall seconds this rung may use.
    optuna_storage : str
        SQLAlchemy URL of the run's Optuna database.
    splits : dict or None
        Classification: ``{"kind", "dev", "test", ...}``; ``folds`` then tune on ``dev``.
    cache_folder : Path or None
        Where a rung may keep reusable intermediate results (e.g. extracted features).
    metric : str
        The recipe's metric.
    include_background : bool
        Whether segmentation scores (tuning, post-processing) count the background class.
    """

    dataset: Any
    fingerprint: Any
    folds: list[dict[str, list[str]]]
    folder: Path
    random_state: int
    n_jobs: int
    budget_s: float | None
    optuna_storage: str
    progress: bool = True
    splits: dict[str, Any] | None = None
    cache_folder: Path | None = None
    metric: str = "dice"
    include_background: bool = False


@dataclass
class RungOutcome:
    """What a fitted rung reports; the runner adds the measured cost.

    Attributes
    ----------
    per_case : list of dict
        Segmentation: ``{"case_id", "fold", "scores": {class: {"dice", "hd95"}}}`` for
        every case the rung was evaluated on. Classification: ``{"case_id", "label",
        "proba"}`` for every test case.
    summary : dict or None
        ``{"metric", "per_class", ...}`` when the rung summarises itself
        (classification); the runner summarises segmentation rungs.
    """

    per_case: list[dict[str, Any]]
    summary: dict[str, Any] | None = None
    postprocessing: list[dict[str, Any]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    n_params: int | None = None
    predict_seconds_per_case: float | None = None


class Rung(ABC):
    """One step of the ladder: a searchable model family with fit, load and predict.

    Subclasses set ``name``, ``tasks`` and a frozen dataclass ``Params``; the
    constructor only stores the parameters. Segmentation rungs predict with
    ``predict(image)`` (a class-index map of a normalised image), classification rungs
    with ``predict_proba(dataset, cases)``.
    """

    name: ClassVar[str]
    tasks: ClassVar[tuple[str, ...]]
    Params: ClassVar[type]

    def __init__(self, params: Any = None) -> None:
        self.params = params if params is not None else self.Params()

    @abstractmethod
    def search_space(self, trial: Any) -> dict[str, Any]:
        """Hyperparameters suggested by an Optuna ``trial``."""

    @abstractmethod
    def fit(self, context: FitContext) -> RungOutcome:
        """Tune, cross-validate and fit the final model, saving it in ``context.folder``."""

    @classmethod
    @abstractmethod
    def load(cls, folder: Path) -> Rung:
        """A fitted rung from the folder :meth:`fit` wrote."""

