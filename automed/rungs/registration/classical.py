"""The classical registration rungs (SimpleITK): ``affine`` (centred initialisation, then affine, multi-resolution)
and ``classical`` (the same, then a deformable stage: diffeomorphic demons or a B-spline free-form deformation),
whose few parameters an Optuna study tunes on pairs of training volumes (never an evaluation pair).

Tolerances are set for seconds per pair, not hours: a random 20 % of the voxels sample the affine metric (5 % the
B-spline's), three resolution levels for the affine stage and two for the B-spline, and bounded iterations
(published SimpleITK B-spline runtimes range from hours with default tolerances to minutes with loosened ones).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from automed.models.search import SearchObjective, open_study, optimize_within
from automed.rungs.base import FitContext, RungOutcome, RungPlan
from automed.rungs.registration.base import GridVolumes, RegistrationRung, TuningPairs, evaluate_pairs, tuning_pairs

__all__ = ["ClassicalRegistrationRung", "ClassicalRegistrationParams"]

log = logging.getLogger("automed")
SIMILARITIES = {
    "correlation": lambda method: method.SetMetricAsCorrelation(),
    "mean_squares": lambda method: method.SetMetricAsMeanSquares(),
    "mattes_mi": lambda method: method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32),
}
"""Image similarities searched: correlation and mean squares for one modality, Mattes mutual information for
two (FLAIR onto T1c)."""
SAMPLING_SEED = 1
"""Seed of the metric's random voxel sample (SimpleITK's 0 means the wall clock: a pair would register differently
each time)."""
AFFINE_KEYS = ("metric", "affine_iterations")
STAGE_KEYS = {"demons": ("demons_iterations", "demons_sigma"), "bspline": ("grid_spacing_mm", "bspline_iterations")}
DEFAULT = {"metric": "correlation", "affine_iterations": 100, "deformable": "demons", "demons_iterations": 100,
           "demons_sigma": 1.0, "grid_spacing_mm": 12.0, "bspline_iterations": 40}
"""The first trial. Diffeomorphic demons is the default deformable stage: on hippocampus pairs (4-6 of them, 2 CPU
cores) it took 1.4 s a pair for Dice 0.78, against 10 s and 0.75 for the B-spline with these settings."""
BSPLINE_SAMPLING_SHARE = 0.25
"""The B-spline stage samples a quarter of the affine stage's voxels: its gradient costs 64 coefficients per sample
(10 s a hippocampus pair at 20 %, 2.4 s at 5 %)."""


@dataclass(frozen=True)
class ClassicalRegistrationParams:
    """Parameters of the classical registration rungs.

    Attributes
    ----------
    n_trials : int
        Optuna trials (1: the default configuration, no search).
    n_tuning_pairs : int
        Pairs of training volumes each trial registers.
    sampling : float
        Share of the voxels that sample the metric.
    threads : int
        SimpleITK threads (0: the fit's jobs).
    """

    n_trials: int = 8
    n_tuning_pairs: int = 6
    sampling: float = 0.2
    threads: int = 0


class ClassicalRegistrationRung(RegistrationRung):
    """SimpleITK registration: affine, then (``deformable``) B-spline."""

    name = "classical"
    Params = ClassicalRegistrationParams
    deformable: ClassVar[bool] = True
    export_as = None

    def default_allotment(self) -> float | None:
        return 600.0

    def search_space(self, trial: Any) -> dict[str, Any]:
        space = {"metric": trial.suggest_categorical("metric", list(SIMILARITIES)),
                 "affine_iterations": trial.suggest_int("affine_iterations", 50, 200, step=50)}
        if not self.deformable:
            return space
        space["deformable"] = trial.suggest_categorical("deformable", list(DEFORMABLE_STAGES))
        if space["deformable"] == "demons":  # an intensity difference: one modality (it ignores the metric)
            space.update(demons_iterations=trial.suggest_int("demons_iterations", 20, 150, step=10),
                         demons_sigma=trial.suggest_float("demons_sigma", 0.75, 2.5))
        else:
            space.update(grid_spacing_mm=trial.suggest_float("grid_spacing_mm", 6.0, 30.0, log=True),
                         bspline_iterations=trial.suggest_int("bspline_iterations", 20, 100, step=20))
        return space

    def plan(self, context: FitContext) -> RungPlan:
        """Time one registration of a training (or evaluation) pair with the default configuration; fit the
        trials into the allotment."""
        volumes = GridVolumes(context.dataset, context.fingerprint)
        pairs = tuning_pairs(context, self.params.n_tuning_pairs)
        probe_pair = pairs[0] if pairs else (context.dataset.evaluation[0].fixed, context.dataset.evaluation[0].moving)
        self._configure(DEFAULT, context)
        started = time.perf_counter()
        self.register(volumes[probe_pair[0]].image, volumes[probe_pair[1]].image)
        per_pair = time.perf_counter() - started
        n_eval = len(context.dataset.evaluation)
        trials = self.params.n_trials if len(pairs) and self.params.n_trials > 1 else 0
        note = f"probe: {per_pair:.1f} s per pair with the default configuration"
        shrunk: list[str] = []
        least = per_pair * (n_eval + 1)
        if context.budget_s is not None:
            affordable = int((context.budget_s - least) // max(per_pair * 1.3 * len(pairs), 1e-6)) if pairs else 0
            if affordable < trials:
                shrunk.append(f"trials {trials} -> {max(affordable, 0)} to fit {context.budget_s:.0f} s")
                trials = max(affordable, 0) if affordable >= 2 else 0
            if least > context.budget_s:
                return RungPlan(least, note=note, shrunk=shrunk, min_seconds=least, skip_reason=(
                    f"estimated {least:.0f} s to register the {n_eval} evaluation pairs > the {context.budget_s:.0f} s "
                    "allotted."))
        seconds = per_pair * (n_eval + 1.3 * trials * len(pairs))
        return RungPlan(seconds, note=note, shrunk=shrunk, min_seconds=least,
                        settings={"n_trials": trials, "tuning_pairs": [list(p) for p in pairs]})

    def fit(self, context: FitContext, plan: RungPlan | None = None) -> RungOutcome:
        plan = plan or self.plan(context)
        volumes = GridVolumes(context.dataset, context.fingerprint)
        started = time.monotonic()
        if "replay_config" in plan.settings:
            config, search = dict(plan.settings["replay_config"]), {"n_trials": 0, "note": "replayed"}
        elif plan.settings.get("n_trials", 0) >= 2:
            config, search = self._search(context, plan, volumes)
        else:
            config, search = {}, {"n_trials": 0, "note": "no search: the default configuration"}
        search_seconds = time.monotonic() - started
        self._configure(config, context)
        per_case = evaluate_pairs(self, context, volumes)
        (context.folder / "model.json").write_text(json.dumps({"config": self.config_, "params": asdict(self.params),
                                                               "spacing": self.spacing_}, indent=2))
        return RungOutcome(per_case, details={"config": self.config_, "search": search,
                                              "stages": ["affine", self.config_["deformable"]] if self.deformable
                                              else ["affine"]},
                           predict_seconds_per_case=float(np.mean([c["seconds"] for c in per_case])),
                           cost={"search_seconds": search_seconds, "n_trials": search["n_trials"]})

    def _search(self, context: FitContext, plan: RungPlan, volumes: GridVolumes) -> tuple[dict, dict]:
        tuning = TuningPairs([tuple(p) for p in plan.settings["tuning_pairs"]], volumes, context.fingerprint)

        def objective(trial: Any) -> float:
            self._configure(self.search_space(trial), context)
            return tuning.score(self)

        self._configure(DEFAULT, context)
        study = open_study(self.name, context.optuna_storage, context.random_state, dict(self.config_), about={
                               "rung": self.name, "task": "registration",
                               "metric": tuning.metric,
                               "measured_on": f"{len(tuning.pairs)} pairs of training volumes"})
        optimize_within(study, SearchObjective(objective), plan.settings["n_trials"], None)
        self._configure(study.best_params, context)
        config = dict(self.config_)
        return config, {"n_trials": len(study.trials), "best_value": study.best_value, "best_params": config,
                        "tuning_pairs": len(tuning.pairs), "objective": f"{tuning.metric} on pairs of training volumes"}

    def _configure(self, config: dict[str, Any], context: FitContext) -> None:
        config = {**DEFAULT, **config}
        kept = AFFINE_KEYS + (("deformable", *STAGE_KEYS[config["deformable"]]) if self.deformable else ())
        self.config_ = {k: config[k] for k in kept}
        self.spacing_ = [float(s) for s in context.fingerprint["spacing"]]
        self.threads_ = self.params.threads or context.n_jobs

    @classmethod
    def load(cls, folder: Path) -> ClassicalRegistrationRung:
        record = json.loads((folder / "model.json").read_text())
        rung = cls(cls.Params(**record["params"]))
        rung.config_, rung.spacing_ = record["config"], record["spacing"]
        rung.threads_ = rung.params.threads or 1
        return rung

    @classmethod
    def chosen(cls, details: dict[str, Any]) -> dict[str, Any]:
        return {"replay_config": details["config"], "n_trials": 0} if details.get("config") else {}

    def register(self, fixed: np.ndarray, moving: np.ndarray) -> np.ndarray:
        """Affine (and B-spline) registration of the channel means of ``moving`` onto ``fixed``."""
        import SimpleITK as sitk

        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(max(1, int(self.threads_)))
        fixed_image, moving_image = self._image(fixed), self._image(moving)
        dims = fixed_image.GetDimension()
        # centres of mass align the images; a blank image has none, so its geometric centre stands in
        centre = sitk.CenteredTransformInitializerFilter.MOMENTS if fixed.any() and moving.any() \
            else sitk.CenteredTransformInitializerFilter.GEOMETRY
        initial = sitk.CenteredTransformInitializer(fixed_image, moving_image, sitk.AffineTransform(dims), centre)
        method = self._method([4, 2, 1], [2.0, 1.0, 0.0])
        method.SetOptimizerAsRegularStepGradientDescent(1.0, 1e-3, int(self.config_["affine_iterations"]),
                                                        relaxationFactor=0.6)
        method.SetOptimizerScalesFromPhysicalShift()
        method.SetInitialTransform(initial, inPlace=False)
        affine = method.Execute(fixed_image, moving_image)
        transform: Any = affine
        if self.deformable:
            stage = DEFORMABLE_STAGES[self.config_["deformable"]]
            # the deformable transform acts first, then the affine
            transform = sitk.CompositeTransform([affine, stage(self, fixed_image, moving_image, affine)])
        field = sitk.TransformToDisplacementField(transform, sitk.sitkVectorFloat64, fixed_image.GetSize(),
                                                  fixed_image.GetOrigin(), fixed_image.GetSpacing(),
                                                  fixed_image.GetDirection())
        vectors = sitk.GetArrayFromImage(field)  # (*grid, xyz) in mm
        spacing = np.asarray(self.spacing_)  # array order
        return np.stack([vectors[..., dims - 1 - axis] / spacing[axis] for axis in range(dims)]).astype(np.float32)

    def _bspline(self, fixed_image: Any, moving_image: Any, affine: Any) -> Any:
        """A B-spline free-form deformation on top of ``affine`` (LBFGSB, two resolutions)."""
        import SimpleITK as sitk

        physical = [n * s for n, s in zip(fixed_image.GetSize(), fixed_image.GetSpacing())]
        mesh = [max(1, round(p / float(self.config_["grid_spacing_mm"]))) for p in physical]
        bspline = sitk.BSplineTransformInitializer(fixed_image, mesh)
        method = self._method([2, 1], [1.0, 0.0], self.params.sampling * BSPLINE_SAMPLING_SHARE)
        method.SetOptimizerAsLBFGSB(gradientConvergenceTolerance=1e-5,
                                    numberOfIterations=int(self.config_["bspline_iterations"]))
        method.SetMovingInitialTransform(affine)
        method.SetInitialTransform(bspline, inPlace=True)
        method.Execute(fixed_image, moving_image)
        return bspline

    def _demons(self, fixed_image: Any, moving_image: Any, affine: Any) -> Any:
        """Diffeomorphic demons on the affinely resampled moving image (its histogram matched to the fixed one)."""
        import SimpleITK as sitk

        aligned = sitk.Resample(moving_image, fixed_image, affine, sitk.sitkLinear, 0.0)
        aligned = sitk.HistogramMatchingImageFilter().Execute(aligned, fixed_image)
        demons = sitk.DiffeomorphicDemonsRegistrationFilter()
        demons.SetNumberOfIterations(int(self.config_["demons_iterations"]))
        demons.SetStandardDeviations(float(self.config_["demons_sigma"]))
        field = demons.Execute(fixed_image, aligned)
        return sitk.DisplacementFieldTransform(sitk.Cast(field, sitk.sitkVectorFloat64))

    def _image(self, array: np.ndarray) -> Any:
        import SimpleITK as sitk

        image = sitk.GetImageFromArray(array.mean(axis=0).astype(np.float32))
        image.SetSpacing([float(s) for s in self.spacing_[::-1]])
        return image

    def _method(self, shrink: list[int], smoothing: list[float], sampling: float | None = None) -> Any:
        import SimpleITK as sitk

        method = sitk.ImageRegistrationMethod()
        SIMILARITIES[self.config_["metric"]](method)
        method.SetMetricSamplingStrategy(method.RANDOM)
        method.SetMetricSamplingPercentage(sampling or self.params.sampling, seed=SAMPLING_SEED)
        method.SetInterpolator(sitk.sitkLinear)
        method.SetShrinkFactorsPerLevel(shrink)
        method.SetSmoothingSigmasPerLevel(smoothing)
        method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
        return method


DEFORMABLE_STAGES = {"demons": ClassicalRegistrationRung._demons, "bspline": ClassicalRegistrationRung._bspline}
"""The deformable stages searched: diffeomorphic demons (one modality) and a B-spline on the searched metric."""
