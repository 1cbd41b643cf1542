"""Rung 0, ``classical``: per-voxel filter-bank features + LightGBM / Random Forest.

Fitting, in order (on the rung's own grid, :mod:`automed.rungs.segmentation.classical_grid`, coarser than the
working grid for cases over ``max_case_voxels`` or when the allotment demands it; probabilities
are interpolated back onto the working grid for every decision and score):

1. features of every training case, with class-balanced voxel sampling;
2. an Optuna search (model family and hyperparameters) on an inner split of fold 0's
   training cases, so fold 0's validation cases never influence tuning
   (:mod:`automed.rungs.segmentation.classical_search`);
3. K-fold cross-validation with the best configuration, giving out-of-fold (OOF)
   probabilities for every case;
4. auto-context (:mod:`automed.features.context`): a second stage with the same configuration,
   its features extended by the first stage's OOF probabilities smoothed and read at offsets,
   cross-validated on the same folds; kept only where it raises OOF Dice;
5. on the OOF predictions, the background weight that undoes the prior shift of
   balanced sampling, then morphological post-processing (each kept only where it
   raises mean Dice);
6. final models (each stage kept) refitted on all cases.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from automed.data.case import Case
from automed.data.io import mask_suffix, write_image
from automed.data.loading import load_case
from automed.data.normalize import normalize, unmap_labels
from automed.data.spill import spill
from automed.features.context import n_context_features
from automed.models.classical import decide, mean_dice
from automed.rungs.base import FitContext, Rung, RungOutcome, RungPlan
from automed.rungs.segmentation.classical_cases import CaseData, inside, prepare_case, spilled
from automed.rungs.segmentation.classical_grid import coarse_shape, coarsening_factors, to_coarse, to_fine
from automed.rungs.segmentation.classical_params import ClassicalParams
from automed.rungs.segmentation.classical_search import search_configuration, search_space
from automed.rungs.records import read_record, write_record
from automed.rungs.stages import Stages

__all__ = ["ClassicalRung", "ClassicalParams"]

log = logging.getLogger(__name__)
BACKGROUND_WEIGHTS = (0.5, 0.7, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)
# Measured: the default recipe took 439 s on 12.0 M hippocampus voxels and 227 s on 7.9 M EM pixels
# with 2 cores, i.e. about 6.5e-5 core-seconds per voxel; the estimate scales it by voxels and cores.
CORE_SECONDS_PER_VOXEL = 6.5e-5
# Measured on 10 tiny cases (20 k voxels) with 2 cores: a fit took 11 s, nearly all of it the 9 model fits
# (6 search trials, 2 folds, the final model) at about 1.1 s each, whatever the data size.
SECONDS_PER_MODEL_FIT = 1.1
# Measured on the six BraTS cases (240 x 240 x 155, 2 channels, 5 classes, 2 cores), whose grid was coarsened
# about 2 times per axis: 575 s against 204 s estimated from the coarse grid alone; the difference, what runs on
# the working grid (reading and shrinking each case, interpolating each class's probabilities back, deciding,
# post-processing, scoring), is about 1.4e-6 s per working-grid voxel and class. It predicts the scaling benchmark's
# fit of three synthetic 300 x 512 x 512 CTs (3 classes, grid 3.7 to 4.8 times coarser) at 1087 s; it took 1026 s.
FINE_SECONDS_PER_VOXEL_CLASS = 1.4e-6
#: The rung shrinks its grid to fit its allotment down to cases of this many voxels (about 27^3 or 140^2),
#: and is skipped when even that would not fit.
MIN_CASE_VOXELS = 20_000
#: The auto-context stage's model, beside the first stage's ``model.joblib``.
CONTEXT_MODEL = "context_model.joblib"


class ClassicalRung(Rung):
    """Handcrafted voxel features with gradient boosting or a random forest."""

    name = "classical"
    tasks = ("segmentation",)
    export_as = "pipeline"
    Params = ClassicalParams
    # The baseline every deep rung is judged against: twice a light rung's share, so a tight budget
    # coarsens its grid only when the data are large (what it leaves unused goes to the rungs above).
    cost_weight = 2.0

    def default_allotment(self) -> float | None:
        return self.params.max_seconds

    def search_space(self, trial: Any) -> dict[str, Any]:
        return search_space(trial, self.params.models)

    def plan(self, context: FitContext) -> RungPlan:
        """An estimate from the voxels on the rung's grid, the model fits and the cores; a grid
        coarse enough for the allotment, or a skip when even the coarsest allowed would not fit."""
        fp = context.fingerprint
        factors = coarsening_factors(fp.median_shape, fp.median_spacing, self.params.max_case_voxels)
        coarse, fixed, note = self._estimate(context, factors)
        seconds = coarse + fixed
        shrunk, skip = [], None
        least = sum(self._estimate(context, coarsening_factors(fp.median_shape, fp.median_spacing, MIN_CASE_VOXELS))[:2])
        if context.budget_s is not None and seconds > context.budget_s:
            # what coarsening cannot reduce: the model fits and the work on the working grid
            fixed = self._estimate(context, tuple(f * 2 for f in factors))[1]
            median_voxels = int(np.prod(coarse_shape(fp.median_shape, factors)))
            fitting = 0.9 * median_voxels * (context.budget_s - fixed) / max(coarse, 1e-9)
            if fitting < min(MIN_CASE_VOXELS, median_voxels):
                skip = (f"estimated {seconds / 60:.1f} min ({note}) against {context.budget_s / 60:.1f} min allotted, "
                        f"and a grid coarse enough to fit would leave the median case under "
                        f"{min(MIN_CASE_VOXELS, median_voxels)} voxels")
            else:
                before = seconds
                factors = coarsening_factors(fp.median_shape, fp.median_spacing, int(fitting))
                seconds, note = sum(self._estimate(context, factors)[:2]), self._estimate(context, factors)[2]
                shrunk.append(f"grid coarsened by {list(factors)} (median case {list(fp.median_shape)} -> "
                              f"{list(coarse_shape(fp.median_shape, factors))} voxels): {before / 60:.1f} min estimated "
                              f"on the finer grid, {context.budget_s / 60:.1f} min allotted")
        return RungPlan(seconds, None, note, shrunk, skip, settings={"grid_factors": list(factors)},
                        min_seconds=min(least, seconds))

    def _estimate(self, context: FitContext, factors: tuple[float, ...]) -> tuple[float, float, str]:
        """Seconds that scale with the rung's grid, seconds that do not (model fits and, on a coarser
        grid, the work on the working grid), and how they were estimated."""
        fp = context.fingerprint
        records = _fitted_records(context)
        n_voxels = sum(int(np.prod(coarse_shape(r["shape"], factors))) for r in records)
        n_fits = self.params.n_trials + (len(context.folds) + 1) * (2 if self.params.auto_context else 1)
        coarse = CORE_SECONDS_PER_VOXEL * n_voxels / max(1, context.n_jobs)
        fixed, note = SECONDS_PER_MODEL_FIT * n_fits, ""
        if any(f != 1 for f in factors):
            n_fine = sum(int(np.prod(r["shape"])) for r in records)
            fixed += FINE_SECONDS_PER_VOXEL_CLASS * n_fine * fp.n_classes
            note = (f" on a grid coarser by {list(factors)}, + {n_fine / 1e6:.1f} M working-grid voxels x "
                    f"{fp.n_classes} classes x {FINE_SECONDS_PER_VOXEL_CLASS:g} s")
        return coarse, fixed, (f"{n_voxels / 1e6:.1f} M voxels x {CORE_SECONDS_PER_VOXEL:g} core-seconds per voxel "
                               f"(measured on two datasets) / {context.n_jobs} cores{note} + {n_fits} model fits x "
                               f"{SECONDS_PER_MODEL_FIT:g} s; needs no GPU")

    # -- fitting -------------------------------------------------------------------------

    def fit(self, context: FitContext, plan: RungPlan | None = None) -> RungOutcome:
        from automed.models.postprocess import apply_postprocessing, choose_postprocessing

        started = time.monotonic()
        stages = Stages()
        fp = context.fingerprint
        used = {r["case_id"] for r in _fitted_records(context)}
        cases = {c.case_id: c for c in context.dataset.cases if c.case_id in used}
        plan = plan or self.plan(context)
        with stages("features and sampling"):
            store = self.sample_cases(context, plan, list(cases.values()))
        log.info("classical: sampled %d voxels from %d cases in %.1fs (features cached: %s)",
                 sum(len(d.y) for d in store.values()), len(store), time.monotonic() - started,
                 next(iter(store.values())).rows is not None)

        budget_left = None if context.budget_s is None else context.budget_s - (time.monotonic() - started)
        if "replay_config" in plan.settings:  # automed fit --replay: the model another run chose
            config, study_info = plan.settings["replay_config"], {"n_trials": 0, "note": "replayed: the configuration "
                                                                                      "of the run it replays"}
        else:
            with stages("search"):
                config, study_info = search_configuration(self, context, cases, store, budget_left)
        with stages("out-of-fold predictions and auto-context"):
            coarse, fold_of, seconds = self._out_of_fold(config, store, cases, context, "proba")
            ids = sorted(coarse)
            truths = [store[i].label for i in ids]
            first = 0 if context.include_background else 1
            proba = self._on_working_grid(coarse, store, context, "fine")
            weight, dice = self._choose_background_weight([proba[i] for i in ids], truths, fp.n_classes, first)
            context_model, context_info = None, None
            if self.params.auto_context and len(coarse) < len(store):
                context_info = {"kept": False, "note": "not run: it learns from every training case's out-of-fold "
                                                       "probabilities, and the folds leave some cases unvalidated"}
            elif self.params.auto_context:
                # Stage 2 learns from stage 1's out-of-fold probabilities, so its inputs are those a new case
                # would get.
                extra = {c: spill(self.params.context_of(p), context.scratch_path(
                    "classical", c, "context")) for c, p in coarse.items()}
                stacked = {c: replace(d, X=np.hstack([d.X, extra[c][d.index]])) for c, d in store.items()}
                coarse, _, more = self._out_of_fold(config, stacked, cases, context, "proba2", extra)
                proba2 = self._on_working_grid(coarse, store, context, "fine2")
                weight2, dice2 = self._choose_background_weight([proba2[i] for i in ids], truths, fp.n_classes, first)
                context_info = self._context_details(fp.n_classes, fp.dims, dice, dice2)
                if dice2 > dice:  # kept only where it raises out-of-fold Dice, like each post-processing step
                    proba, weight, seconds = proba2, weight2, {c: t + more[c] for c, t in seconds.items()}
                    context_model = self._train(config, stacked, list(store), context)
        seconds = [seconds[i] for i in ids]
        preds = [inside(decide(proba.pop(i), weight), store[i].roi) for i in ids]
        steps: list[dict[str, Any]] = []
        dice_raw = dice_pp = None
        if self.params.postprocessing:
            steps, dice_raw, dice_pp = choose_postprocessing(preds, truths, fp.n_classes, first_class=first)
            t0 = time.monotonic()
            preds = [apply_postprocessing(p, steps) for p in preds]
            seconds = [s + (time.monotonic() - t0) / len(ids) for s in seconds]

        per_case = self._score_and_write(context, cases, store, ids, preds, fold_of)
        with stages("final model"):
            final = self._train(config, store, list(store), context)
        self._save(context.folder, final, context_model, config, weight, steps, fp.n_classes)
        return RungOutcome(
            per_case=per_case,
            postprocessing=steps,
            details={"model": config, "background_weight": weight, "search": study_info,
                     "features": asdict(self.features_),
                     "n_features": self.features_.n_features(fp.n_channels, fp.dims),
                     "samples_per_class_and_case": self.params.samples_per_case(fp.n_cases),
                     "auto_context": context_info,
                     "dice_before_postprocessing": dice_raw, "dice_after_postprocessing": dice_pp,
                     "final_model": "refitted on all cases", "stage_seconds": stages.seconds},
            predict_seconds_per_case=float(np.mean(seconds)),
        )

    def sample_cases(self, context: FitContext, plan: RungPlan, cases: list[Case]) -> dict[str, CaseData]:
        """The features of every case's sampled voxels, computed in parallel (local processes, or Dask tasks on
        ``context.cluster``, each reading its case), by case id; whole feature matrices are kept where they fit
        the feature cache. Sets the rung's filter bank and working grid (from ``plan``)."""
        from automed.cluster.case_map import map_cases

        fp = context.fingerprint
        self.features_ = self.params.features(fp.normalization == "rgb" and fp.n_channels == 3)
        self.grid_factors_ = tuple(plan.settings["grid_factors"])
        n_voxels = sum(int(np.prod(coarse_shape(r["shape"], self.grid_factors_))) for r in _fitted_records(context))
        cache_bytes = n_voxels * self.features_.n_features(fp.n_channels, fp.dims) * 4
        keep_rows = cache_bytes <= self.params.feature_cache_gb * 2**30
        jobs = [(self, case, fp, context.dataset.channels_in_one_file, context.random_state + i, keep_rows)
                for i, case in enumerate(cases)]
        results = map_cases(prepare_case, jobs, len(jobs), context.n_jobs, context.cluster, "classical features",
                            context.progress)
        return {case.case_id: spilled(result, context, case.case_id) for case, result in zip(cases, results)}

    def _out_of_fold(self, config: dict[str, Any], store: dict[str, CaseData], cases: dict[str, Case],
                     context: FitContext, what: str, extra: dict[str, np.ndarray] | None = None,
                     ) -> tuple[dict[str, np.ndarray], dict[str, int], dict[str, float]]:
        """Each case's class probabilities on the rung's grid (kept on disk) from the model of the fold
        that did not train on it, the fold of each case, and the seconds each prediction took
        (``extra``: auto-context columns appended to each case's features)."""
        coarse, fold_of, seconds = {}, {}, {}
        for k, fold in enumerate(_progress(context.folds, context.progress, f"classical folds ({what})")):
            model = self._train(config, store, fold["train"], context)
            for case_id in fold["val"]:
                t0 = time.monotonic()
                data = store[case_id]
                case_proba = self._coarse_proba(model, cases[case_id], data, context,
                                                None if extra is None else extra[case_id])
                # Cached features were computed in sample_cases; charge their time to the prediction.
                seconds[case_id] = time.monotonic() - t0 + (data.feature_seconds if data.rows is not None else 0.0)
                coarse[case_id] = spill(case_proba, context.scratch_path("classical", case_id, what))
                fold_of[case_id] = k
        return {c: coarse[c] for c in sorted(coarse)}, fold_of, seconds

    def _train(self, config: dict[str, Any], store: dict[str, CaseData], case_ids: list[str],
               context: FitContext) -> Any:
        from automed.models.classical import build_classifier

        X = np.concatenate([store[c].X for c in case_ids])
        y = np.concatenate([store[c].y for c in case_ids])
        return build_classifier(config, context.random_state, context.n_jobs).fit(X, y)

    def _case_proba(self, model: Any, case: Case, data: CaseData, context: FitContext) -> np.ndarray:
        """Probabilities of a training case on the working grid, from cached features when available."""
        return to_fine(self._coarse_proba(model, case, data, context), data.label.shape)

    def _coarse_proba(self, model: Any, case: Case, data: CaseData, context: FitContext,
                      extra: np.ndarray | None = None) -> np.ndarray:
        """Probabilities of a training case on the rung's grid, from cached features when available."""
        from automed.models.classical import predict_proba_rows, predict_proba_volume

        n_classes = context.fingerprint.n_classes
        if data.rows is not None:
            rows = data.rows if extra is None else np.hstack([data.rows, extra])
            return predict_proba_rows(model, rows, n_classes).reshape(n_classes, *data.grid_shape)
        loaded = load_case(case, context.fingerprint.n_channels, context.dataset.channels_in_one_file,
                           context.fingerprint.target_spacing)
        coarse, _, _ = to_coarse(normalize(loaded.image, context.fingerprint), None, None, self.grid_factors_)
        return predict_proba_volume(model, coarse, self.features_, n_classes, self.params.slab_voxels,
                                    workers=max(1, context.n_jobs), extra=extra)

    def predict_proba(self, image: np.ndarray, n_jobs: int = 1) -> np.ndarray:
        """Class probabilities ``(n_classes, *spatial)`` of a normalised image on its own grid, computed on the
        rung's grid (by the auto-context stage, when there is one, from the first stage's)."""
        from automed.models.classical import predict_proba_volume

        coarse, _, _ = to_coarse(image, None, None, self.grid_factors_)
        proba = predict_proba_volume(self.model_, coarse, self.features_, self.n_classes_, self.params.slab_voxels,
                                     workers=max(1, n_jobs))
        if self.context_model_ is not None:
            proba = predict_proba_volume(self.context_model_, coarse, self.features_, self.n_classes_,
                                         self.params.slab_voxels, workers=max(1, n_jobs),
                                         extra=self.params.context_of(proba))
        return to_fine(proba, image.shape[1:])

    def _on_working_grid(self, coarse: dict[str, np.ndarray], store: dict[str, CaseData],
                         context: FitContext, what: str) -> dict[str, np.ndarray]:
        """Probabilities on the rung's grid interpolated onto the working grid (kept on disk: every
        case's are needed to choose the background weight)."""
        return {c: spill(to_fine(p, store[c].label.shape), context.scratch_path("classical", c, what))
                for c, p in coarse.items()}

    def _context_details(self, n_classes: int, dims: int, dice_first: float, dice_second: float) -> dict[str, Any]:
        p = self.params
        return {"sigmas": list(p.context_sigmas), "offsets": list(p.context_offsets),
                "n_features": n_context_features(n_classes, dims, p.context_sigmas, p.context_offsets),
                "oof_dice_first_stage": dice_first, "oof_dice_second_stage": dice_second,
                "kept": dice_second > dice_first,
                "note": ("each fold's second stage trains on the other folds' first-stage out-of-fold probabilities; "
                         "their models saw that fold's cases, a second-order influence on the cross-validated "
                         "score, as in stacking without nested folds")}

    @staticmethod
    def _choose_background_weight(probas: list[np.ndarray], truths: list[np.ndarray], n_classes: int,
                                  first_class: int = 1) -> tuple[float, float]:
        """The weight of the background probability that maximises mean OOF foreground Dice, and that Dice.

        Balanced sampling trains the classifier as if all classes were equally common;
        up-weighting the background restores the true, background-heavy prior.
        """
        dice = {w: mean_dice(probas, truths, w, n_classes, first_class) for w in BACKGROUND_WEIGHTS}
        best = max(dice, key=dice.get)
        return best, dice[best]

    def _score_and_write(self, context: FitContext, cases: dict[str, Case], store: dict[str, CaseData],
                         ids: list[str], preds: list[np.ndarray], fold_of: dict[str, int]) -> list[dict[str, Any]]:
        from automed.metrics import segmentation_scores

        fp = context.fingerprint
        spacing = {r["case_id"]: r["spacing"] for r in fp.cases}
        out_dir = context.folder / "oof"
        out_dir.mkdir(parents=True, exist_ok=True)
        per_case = []
        for case_id, pred in zip(ids, preds):
            scores = segmentation_scores(pred, store[case_id].label, fp.n_classes, spacing[case_id])
            per_case.append({"case_id": case_id, "fold": fold_of[case_id],
                             "scores": {str(c): s for c, s in scores.items()}})
            label_path = cases[case_id].label_source
            suffix = mask_suffix(label_path)
            write_image(unmap_labels(pred, fp.label_mapping), store[case_id].geometry, out_dir / f"{case_id}{suffix}")
        return per_case

    def _save(self, folder: Path, model: Any, context_model: Any, config: dict, weight: float, steps: list,
              n_classes: int) -> None:
        import joblib

        joblib.dump(model, folder / "model.joblib")
        if context_model is not None:
            joblib.dump(context_model, folder / CONTEXT_MODEL)
        write_record(folder / "model.json", self.params, model=config, background_weight=weight,
                     postprocessing=steps, n_classes=n_classes, lab=self.features_.lab,
                     grid_factors=list(self.grid_factors_))

    # -- prediction ----------------------------------------------------------------------

    @classmethod
    def chosen(cls, details: dict[str, Any]) -> dict[str, Any]:
        """The model configuration its search chose."""
        return {"replay_config": details["model"]} if isinstance(details.get("model"), dict) else {}

    @classmethod
    def load(cls, folder: Path) -> ClassicalRung:
        """The fitted rung saved in ``folder`` (``model.joblib`` + ``model.json``).

        ``model.joblib`` is a pickle: load run folders you (or someone you trust) wrote.
        """
        import joblib

        params, meta = read_record(folder / "model.json", ClassicalParams,
                                   ("background_weight", "postprocessing", "n_classes"))
        rung = cls(params)
        rung.model_ = joblib.load(folder / "model.joblib")
        context_file = folder / CONTEXT_MODEL
        rung.context_model_ = joblib.load(context_file) if context_file.is_file() else None
        rung.background_weight_ = meta["background_weight"]
        rung.postprocessing_ = meta["postprocessing"]
        rung.n_classes_ = meta["n_classes"]
        rung.features_ = params.features(meta.get("lab", False))  # runs before colour: no L*a*b*
        rung.grid_factors_ = tuple(meta.get("grid_factors") or (1.0,))  # older runs: the working grid
        return rung

    def predict(self, image: np.ndarray) -> np.ndarray:
        """Class map of a normalised image, decided and post-processed as chosen in the fit."""
        return self.class_map(self.predict_proba(image))

    def class_map(self, proba: np.ndarray) -> np.ndarray:
        """The class map of :meth:`predict_proba`'s probabilities: the background weighted as chosen in the fit,
        then post-processed."""
        from automed.models.postprocess import apply_postprocessing

        return apply_postprocessing(decide(proba, self.background_weight_), self.postprocessing_)


def _progress(iterable: Any, enabled: bool, desc: str, total: int | None = None) -> Any:
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, disable=not enabled, unit="case" if total else "it")


def _fitted_records(context: FitContext) -> list[dict[str, Any]]:
    """The fingerprint's records of the cases the rung fits on: those of its folds (every case, except in a
    learning-curve refit on a fraction of them)."""
    used = {c for fold in context.folds for side in ("train", "val") for c in fold[side]}
    return [r for r in context.fingerprint.cases if r["case_id"] in used]
