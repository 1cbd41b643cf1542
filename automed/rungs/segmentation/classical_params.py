"""The parameters of the classical segmentation rung, as a recipe writes them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from automed._params import check_choice, check_range
from automed.features.context import context_features
from automed.features.voxel import VoxelFeatures

__all__ = ["MODELS", "ClassicalParams"]

MODELS = ("lightgbm", "random_forest")


@dataclass(frozen=True)
class ClassicalParams:
    """Parameters of the classical rung.

    Parameters
    ----------
    sigma_min, sigma_max, num_sigma, include_position
        The feature bank, see :class:`automed.features.voxel.VoxelFeatures`.
    include_rank : bool
        Add per-image intensity percentile ranks as features.
    n_samples_per_class : int
        Training voxels sampled per foreground class and case.
    max_samples_per_class : int
        Training voxels per foreground class over all cases: a dataset with many cases samples
        fewer per case (:meth:`samples_per_case`). The model fits cost per sample: on the 200
        hippocampus cases, 500 per case made one Random Forest trial take 4 minutes, while 150
        (30,000 per class) scored 0.857 in 312 s.
    background_ratio : float
        Background voxels sampled per case, as a multiple of ``n_samples_per_class``.
    boundary_fraction : float
        Share of the background samples taken within 3 voxels of the foreground.
    models : tuple of str
        Model families Optuna may choose from (``lightgbm``, ``random_forest``).
    n_trials : int
        Optuna trials at most (the first is a sound LightGBM default). With a time allotment the
        configuration kept is the best whose projected cost for the rest of the rung fits what is
        left (:func:`automed.rungs.segmentation.classical_search.affordable_trial`).
    n_tuning_cases : int
        Validation cases scored per trial (full volumes).
    tuning_fraction : float
        Share of the rung's time budget the search may use.
    max_seconds : float or None
        The rung's own time allotment when the fit has no budget (a baseline should be the cheap first
        answer); None: no bound.
    auto_context : bool
        Train a second stage on the first stage's out-of-fold probabilities, smoothed at
        ``context_sigmas`` (auto-context), kept only where it raises out-of-fold Dice.
    context_sigmas : tuple of float
        Gaussian scales, in voxels of the rung's grid, of the auto-context features.
    context_offsets : tuple of int
        Distances, in voxels of the rung's grid, at which the auto-context stage also reads the
        first stage's (smoothed) probabilities before and after each voxel along each axis.
    postprocessing : bool
        Choose morphological post-processing by cross-validation.
    slab_voxels : int
        Voxels per slab when computing features for prediction (bounds memory).
    feature_cache_gb : float
        Keep every training case's features in memory when they fit in this many GiB
        (saves recomputing them for validation); otherwise recompute slab by slab.
    colour_space : {"lab", "rgb"}
        Colour photographs: filter their CIE L*a*b* channels (``"lab"``) or R, G, B.
    max_case_voxels : int
        Cases whose median has more voxels than this on the working grid are segmented on a
        coarser grid (finest axes first), their probabilities interpolated back: it bounds the
        cost of a CT-sized case (features and boosted trees cost per voxel). A tight allotment
        coarsens further.
    """

    sigma_min: float = 0.5
    sigma_max: float = 8.0
    num_sigma: int = 5
    include_position: bool = True
    include_rank: bool = True
    n_samples_per_class: int = 500
    max_samples_per_class: int = 30_000
    background_ratio: float = 4.0
    boundary_fraction: float = 0.5
    models: tuple[str, ...] = MODELS
    n_trials: int = 6
    n_tuning_cases: int = 20
    tuning_fraction: float = 0.35
    max_seconds: float | None = 600.0
    auto_context: bool = True
    context_sigmas: tuple[float, ...] = (1.0, 2.0, 4.0)
    context_offsets: tuple[int, ...] = (4, 8)
    postprocessing: bool = True
    slab_voxels: int = 2_000_000
    feature_cache_gb: float = 2.0
    colour_space: str = "lab"
    max_case_voxels: int = 1_000_000

    def __post_init__(self) -> None:
        owner = "the classical rung"
        check_range(owner, "sigma_min", self.sigma_min, 0.1)
        check_range(owner, "sigma_max", self.sigma_max, self.sigma_min)
        check_range(owner, "num_sigma", self.num_sigma, 1, 12)
        check_range(owner, "n_samples_per_class", self.n_samples_per_class, 10)
        check_range(owner, "max_samples_per_class", self.max_samples_per_class, 10)
        check_range(owner, "background_ratio", self.background_ratio, 0.1)
        check_range(owner, "boundary_fraction", self.boundary_fraction, 0.0, 1.0)
        check_range(owner, "n_trials", self.n_trials, 1)
        check_range(owner, "n_tuning_cases", self.n_tuning_cases, 1)
        check_range(owner, "tuning_fraction", self.tuning_fraction, 0.0, 0.9)
        if self.max_seconds is not None:
            check_range(owner, "max_seconds", self.max_seconds, 1.0)
        for sigma in self.context_sigmas:
            check_range(owner, "context_sigmas", sigma, 0.1, 64.0)
        for distance in self.context_offsets:
            check_range(owner, "context_offsets", distance, 1, 64)
        check_range(owner, "slab_voxels", self.slab_voxels, 10_000)
        check_range(owner, "feature_cache_gb", self.feature_cache_gb, 0.0)
        check_range(owner, "max_case_voxels", self.max_case_voxels, 1000)
        if not self.models:
            check_choice(owner, "models", self.models, MODELS)
        for model in self.models:
            check_choice(owner, "models", model, MODELS)
        check_choice(owner, "colour_space", self.colour_space, ("lab", "rgb"))

    def samples_per_case(self, n_cases: int) -> int:
        """Voxels sampled per foreground class in each of ``n_cases`` cases: ``n_samples_per_class``,
        fewer where that many would exceed ``max_samples_per_class`` in all (never under 10)."""
        return max(10, min(self.n_samples_per_class, self.max_samples_per_class // max(1, n_cases)))

    def context_of(self, proba: np.ndarray) -> np.ndarray:
        """The auto-context stage's extra per-voxel inputs from first-stage probabilities, see
        :func:`automed.features.context.context_features`."""
        return context_features(proba, self.context_sigmas, self.context_offsets)

    def features(self, photograph: bool = False) -> VoxelFeatures:
        """The feature bank; for a colour ``photograph`` (R, G, B in [0, 1]) with L*a*b* if asked."""
        return VoxelFeatures(self.sigma_min, self.sigma_max, self.num_sigma, self.include_position,
                             self.include_rank, lab=photograph and self.colour_space == "lab")
