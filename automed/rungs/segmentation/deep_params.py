"""The parameters of the deep segmentation rungs, as a recipe writes them."""

from __future__ import annotations

from dataclasses import dataclass

from automed._params import check_choice, check_range
from automed.deep.augment import STRENGTHS
from automed.errors import RecipeError
from automed.rungs.time_plan import check_training_budget

__all__ = ["AUGMENTATIONS", "LOSSES", "DeepParams"]

LOSSES = ("dice_ce", "dice_focal")
AUGMENTATIONS = STRENGTHS


@dataclass(frozen=True)
class DeepParams:
    """Parameters of a deep segmentation rung.

    Parameters
    ----------
    n_trials : int
        Optuna trials at most (fewer when the allotment is short; below 2 the default
        configuration is trained without a search).
    search_fraction : float
        Share of the allotment the search may use; the final training gets the rest.
    max_epochs, min_epochs : int
        Epoch bounds; within them the time allotted decides. A rung that cannot train
        ``min_epochs`` in its allotment is shrunk, then skipped.
    iterations : int
        Optimiser steps per epoch.
    patience_fraction : float
        Early stopping after this share of the planned epochs without a validation gain: in search
        trials and fixed-epoch trainings. A timed final training runs its poly decay to the end (its
        best inner-validation epoch is kept): on the hippocampus, a dynunet stopped by patience 11
        minutes early scored 0.003 Dice below a shorter one that ended its decay.
    widths, depths, batch_sizes : tuple of int
        Searched first-level channels, resolution levels (U-Net only) and batch sizes.
        Empty ``batch_sizes``: two sizes near the rung's ``batch_voxels`` per batch.
    losses, augmentations : tuple of str
        Searched losses (``dice_ce``, ``dice_focal``) and augmentation strengths (``none``, ``light``,
        ``medium``, ``strong``; ``scanner``: ``medium`` plus what another scanner changes, a bias field,
        gamma, histogram shift, blur and noise, for data from several sites).
    lr_min, lr_max : float
        Searched AdamW learning-rate range (log scale, poly decay over the epochs).
    max_patch : int
        Largest patch side; the patch is the median image size rounded up to the
        network's size divisor, capped here.
    tta : bool
        Mirrored test-time augmentation when evaluating and predicting.
    cpu_bfloat16 : bool or "auto"
        On a CPU, train and predict under bfloat16 autocast (weights and optimiser stay fp32).
        ``"auto"``: the plan probes the default configuration's training step in both precisions
        and keeps bfloat16 where it is at least 15% faster (the default). A CPU with AMX-BF16 took
        0.54 s instead of 0.82 s for a dynunet step on the hippocampus; one without took 2.5 times
        as long as in fp32. Trained for the same epochs, both precisions scored the same Dice.
    validation_fraction : float
        Share of the training cases held out for early stopping and search.
    max_validation_cases : int
        Cap on those cases (validation runs every epoch).
    members : int
        Final trainings of the chosen configuration per evaluated fold, each holding out a different
        inner validation split (its early-stopping cases) with its own seed; their softmax outputs
        are averaged (nnU-Net's cross-validation ensemble). They share the final training's time,
        and prediction costs ``members`` times as much.
    """

    n_trials: int = 4
    search_fraction: float = 0.35
    max_epochs: int = 300
    min_epochs: int = 6
    iterations: int = 40
    patience_fraction: float = 0.3
    widths: tuple[int, ...] = (16, 32)
    depths: tuple[int, ...] = (4, 5)
    batch_sizes: tuple[int, ...] = ()
    losses: tuple[str, ...] = LOSSES
    augmentations: tuple[str, ...] = ("light", "medium", "strong")
    lr_min: float = 1e-3
    lr_max: float = 1e-2
    max_patch: int = 0
    tta: bool = True
    cpu_bfloat16: bool | str = "auto"
    validation_fraction: float = 0.15
    max_validation_cases: int = 20
    members: int = 1

    @property
    def inner_folds(self) -> int:
        """Inner folds of a fold's training cases; each member holds one of them out."""
        return max(2, round(1 / self.validation_fraction))

    def __post_init__(self) -> None:
        owner = "a deep rung"
        check_training_budget(owner, self)
        check_range(owner, "iterations", self.iterations, 1)
        check_range(owner, "max_patch", self.max_patch, 0)
        check_range(owner, "validation_fraction", self.validation_fraction, 0.05, 0.5)
        check_range(owner, "max_validation_cases", self.max_validation_cases, 1)
        check_range(owner, "members", self.members, 1, self.inner_folds)
        check_choice(owner, "cpu_bfloat16", self.cpu_bfloat16, (False, True, "auto"))
        for name, values, low in (("widths", self.widths, 4), ("depths", self.depths, 2), ("batch_sizes", self.batch_sizes, 1)):
            for value in values:
                check_range(owner, name, value, low)
        if not self.widths or not self.depths:
            raise RecipeError("The 'widths' and 'depths' parameters of a deep rung need at least one value.")
        for loss in self.losses or ("",):
            check_choice(owner, "losses", loss, LOSSES)
        for strength in self.augmentations or ("",):
            check_choice(owner, "augmentations", strength, AUGMENTATIONS)
