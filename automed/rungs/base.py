"""The protocol every rung implements, and what the runner hands it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Sequence

from automed.results import RungResult


__all__ = ["FitContext", "Rung", "RungOutcome", "RungPlan", "VOLUME_CACHE", "case_probabilities"]

#: The sub-folder of the run's cache holding memory-mapped training cases.
VOLUME_CACHE = "volumes"


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
    optuna_storage : StudyStorage
        The database of the run's Optuna studies (:class:`automed.cluster.storage.StudyStorage`).
    splits : dict or None
        Classification: ``{"kind", "dev", "test", ...}``; ``folds`` then tune on ``dev``.
    cache_folder : Path or None
        Where a rung may keep reusable intermediate results (e.g. extracted features).
    metric : str
        The recipe's metric.
    include_background : bool
        Whether segmentation scores (tuning, post-processing) count the background class.
    cv : {"fold0", "full"}
        Evaluate deep rungs on fold 0's validation cases or on every fold.
    max_vram_bytes : int or None
        Training-memory limit a rung's configuration must respect.
    ordinal : bool
        Classification: the classes are ordered grades (lowest first); rungs also search
        ordinal models.
    finished : tuple of RungResult
        The result of every rung finished so far, in ladder order (for rungs that
        combine others, e.g. ``ensemble``).
    compute_peak : dict or None
        The device's measured dense throughput (:func:`automed.deep.throughput.compute_peak`),
        when the ladder trains networks.
    cluster : distributed.Client or None
        Where per-case feature extraction runs (:func:`automed.cluster.case_map.map_cases`);
        None: this machine's processes.
    """

    dataset: Any
    fingerprint: Any
    folds: list[dict[str, list[str]]]
    folder: Path
    random_state: int
    n_jobs: int
    budget_s: float | None
    optuna_storage: Any
    progress: bool = True
    splits: dict[str, Any] | None = None
    cache_folder: Path | None = None
    metric: str = "dice"
    include_background: bool = False
    cv: str = "fold0"
    max_vram_bytes: int | None = None
    ordinal: bool = False
    finished: tuple[RungResult, ...] = ()
    compute_peak: dict[str, Any] | None = None
    cluster: Any = None

    @property
    def volume_cache(self) -> Path | None:
        """Where the deep rungs keep the normalised training cases they memory-map
        (:func:`automed.deep.volumes.load_volumes`); the runner removes it when the fit ends."""
        return None if self.cache_folder is None else self.cache_folder / VOLUME_CACHE

    def scratch_path(self, rung: str, case_id: str, what: str) -> Path | None:
        """Where ``rung`` may keep ``what`` of a case out of memory during the fit (an ``.npy``
        file in :attr:`volume_cache`, removed with it); None without a cache."""
        from automed.data.spill import spill_name

        cache = self.volume_cache
        return None if cache is None else cache / rung / spill_name(case_id, f"-{what}.npy")


@dataclass(frozen=True)
class RungPlan:
    """A rung's cost estimate for its time allotment, made before it starts. The runner alone keeps it
    (``plan.json``, :func:`automed.rungs.records.save_plan`) and hands it back to :meth:`Rung.fit` on a
    resumed fit or a replay, without calling :meth:`Rung.plan` again.

    Attributes
    ----------
    seconds : float or None
        Estimated wall time of the whole rung.
    train_memory_bytes : int or None
        Estimated memory a GPU needs to train the planned configuration.
    note : str
        How the estimate was made.
    shrunk : list of str
        What was reduced to fit the allotment or the memory limit.
    skip_reason : str or None
        Set when the rung cannot fit at all; the runner then skips it.
    settings : dict
        Rung-specific decisions (epochs, trials, patch, ...) that :meth:`Rung.fit` follows.
    min_seconds : float or None
        Estimated wall time of the rung shrunk as far as it goes, when it knows it: a fit whose
        whole budget is below the first rung's is refused up front.
    """

    seconds: float | None
    train_memory_bytes: int | None = None
    note: str = ""
    shrunk: list[str] = field(default_factory=list)
    skip_reason: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    min_seconds: float | None = None


@dataclass(frozen=True)
class RungOutcome:
    """What a fitted rung reports; the runner adds the measured cost.

    Attributes
    ----------
    per_case : list of dict
        Segmentation: ``{"case_id", "fold", "scores": {class: {"dice", "hd95"}}}`` for
        every case the rung was evaluated on. Classification: ``{"case_id", "label",
        "proba"}`` for every test case.
    validation_per_case : list of dict
        Classification: ``{"case_id", "label", "proba"}`` for development cases the
        predicting model did not train on (out-of-fold or held-out validation cases), for
        rungs that combine others.
    summary : dict or None
        ``{"metric", "per_class", ...}`` when the rung summarises itself
        (classification); the runner summarises segmentation rungs.
    cost : dict
        Cost fields only the rung knows (search and final-fit seconds, trials, device,
        estimated training memory); the runner adds wall time and peak memory.
    """

    per_case: list[dict[str, Any]]
    summary: dict[str, Any] | None = None
    postprocessing: list[dict[str, Any]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    n_params: int | None = None
    predict_seconds_per_case: float | None = None
    cost: dict[str, Any] = field(default_factory=dict)
    validation_per_case: list[dict[str, Any]] = field(default_factory=list)


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
    #: Relative share of the remaining budget the runner allots this rung (rungs that combine
    #: others take none: they get what is left, and hold back :meth:`reserve_seconds` before).
    cost_weight: ClassVar[float] = 1.0
    #: Whether :meth:`fit` continues an interrupted fit found in its folder (else it restarts).
    resumable: ClassVar[bool] = False
    #: Whether it trains torch networks (the run then measures the device's peak throughput first).
    trains_networks: ClassVar[bool] = False
    #: Whether the rung combines finished rungs (an ensemble): it runs even after climbing stopped.
    combines_others: ClassVar[bool] = False
    #: How :mod:`automed.export` writes the fitted rung: ``"pipeline"`` (its joblib files, used through
    #: automed), ``"segmentation_network"`` or ``"classification_network"`` (ONNX or TorchScript networks);
    #: None: it cannot be exported.
    export_as: ClassVar[str | None] = None

    def __init__(self, params: Any = None) -> None:
        self.params = params if params is not None else self.Params()

    @classmethod
    def applies_to(cls, fingerprint: Any) -> bool:
        """Whether the rung can fit data of this ``fingerprint`` at all; one that cannot (a 3D
        network on 2D images) takes no share of the budget from the rungs that can."""
        return True

    @classmethod
    def climb_family(cls) -> str:
        """Rungs of one family are one line of the climb: a rung that confidently fails to gain stops
        the rungs of its family above it, not those of another (a 2D network losing says little of a
        3D one). One family by default."""
        return "main"

    @abstractmethod
    def search_space(self, trial: Any) -> dict[str, Any]:
        """Hyperparameters suggested by an Optuna ``trial``."""

    def plan(self, context: FitContext) -> RungPlan:
        """Estimate the cost for ``context.budget_s`` (the allotment); shrink or skip to fit it.

        Called once per fit: a resumed fit or a replay gets the saved plan from the runner instead, so
        :meth:`fit` must not rely on state this method sets. The default makes no estimate; rungs that
        can measure their cost override it.
        """
        return RungPlan(seconds=None, note="no estimate")

    def shared_search(self, context: FitContext, plan: RungPlan) -> Any:
        """What an ``automed worker`` needs to run trials of this rung's search while the fit runs it
        (a :class:`~automed.models.search.SearchObjective`, built from ``context`` and the fit's saved
        ``plan`` exactly as :meth:`fit` builds it); None where the rung's trials are not shared."""
        return None

    def unavailable(self) -> str | None:
        """Why the rung cannot fit at all, whatever the data and its allotment (e.g. pretrained weights that
        cannot be had); None when it can. The runner then skips it before planning and gives it no share."""
        return None

    def default_allotment(self) -> float | None:
        """Seconds the rung allots itself when the fit has no time budget (None: it takes what it takes).

        A baseline is meant to be the cheap first answer: the classical rungs bound themselves by default.
        """
        return None

    def reserve_seconds(self, context: FitContext, pending: Sequence[str]) -> float:
        """Seconds the runner holds back for this rung while the rungs ``pending`` below it fit.

        Rungs that combine others use it instead of a ``cost_weight`` share; ``context``
        holds the rungs finished so far. The default holds back nothing.
        """
        return 0.0

    @abstractmethod
    def fit(self, context: FitContext, plan: RungPlan | None = None) -> RungOutcome:
        """Tune, evaluate and fit the final model following ``plan``, saving it in ``context.folder``.

        A rung whose folder holds an interrupted fit continues it where it can.
        """

    @classmethod
    @abstractmethod
    def load(cls, folder: Path) -> Rung:
        """A fitted rung from the folder :meth:`fit` wrote."""

    @classmethod
    def chosen(cls, details: dict[str, Any]) -> dict[str, Any]:
        """What a fitted rung chose, from its ``details``, as the plan settings :meth:`fit` follows on a replay
        (``automed fit --replay``, :mod:`automed.ladder.replay`). The default, ``{}``, chooses again (an
        ensemble chooses among its replayed members)."""
        return {}


def case_probabilities(case_ids: Sequence[str], y: Sequence[int], proba: Any,
                       classes: Sequence[str]) -> list[dict[str, Any]]:
    """Classification per-case records ``{"case_id", "label", "proba"}`` of :class:`RungOutcome`."""
    return [{"case_id": c, "label": classes[k], "proba": [float(p) for p in row]}
            for c, k, row in zip(case_ids, y, proba)]
