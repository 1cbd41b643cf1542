"""Rung 0 for classification, ``classical``: radiomics + scikit-image features, tabular models.

Fitting, in order:

1. pyradiomics and scikit-image features of every image, in parallel, cached in the run
   folder (``cache/``) so a second fit reuses them;
2. constant and near-duplicate columns dropped (decided on the development cases only);
3. an Optuna search over LightGBM, Random Forest and regularised logistic regression,
   class weighting included, scored by the recipe's metric on the official validation
   split or on cross-validation folds of the development cases;
4. Platt scaling and, for binary tasks, a decision threshold, both learned from
   out-of-fold predictions of the development cases;
5. the final model refitted on all development cases and evaluated once on the test cases,
   which nothing above has seen.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from automed._params import check_choice, check_range
from automed.features.selection import redundant_free_columns
from automed.metrics import TEST_SCORES, THRESHOLDS, choose_threshold, classification_scores, classification_summary
from automed.models.search import SearchObjective, open_study, optimize_within
from automed.models.tabular import PlattCalibrated, feature_importances
from automed.rungs.base import FitContext, Rung, RungOutcome, RungPlan, case_probabilities
from automed.rungs.classification.classical_features import (cached_features, feature_cache, features_of,
                                                             probe_features, varying_columns, where)
from automed.rungs.records import read_record, write_record
from automed.rungs.stages import Stages

__all__ = ["ClassicalClassifierParams", "ClassicalClassifierRung"]

log = logging.getLogger(__name__)
FEATURE_SETS = ("radiomics", "texture")
SECONDS_PER_FIT = 0.2
SECONDS_PER_FIT_VALUE = 2.75e-6
"""One model fit takes ``SECONDS_PER_FIT`` + ``SECONDS_PER_FIT_VALUE`` x training cases x features kept (wall seconds,
the mean over the model families at the search's settings, 2 cores). Fitted to three datasets: PH2 (24 training cases
of a fold x 1,697 features: 0.32 s), BreastMNIST (499 x 591: 1.0 s) and AdrenalMNIST3D (1,029 x 1,209: 3.6 s)."""
ROIS = ("mask", "nonzero")


@dataclass(frozen=True)
class ClassicalClassifierParams:
    """Parameters of the classical classification rung.

    Parameters
    ----------
    feature_sets : tuple of {"radiomics", "texture"}
        pyradiomics features and/or scikit-image features (histograms, LBP, GLCM, HOG,
        down-sampled pixels).
    radiomics_filters : tuple of {"LoG", "Wavelet"}
        Filtered images pyradiomics also extracts from.
    roi : {"mask", "nonzero"}
        Region the features describe when a case has no mask: the whole image
        (``"mask"``), or its non-zero voxels (``"nonzero"``, e.g. for volumes that are
        segmentations, which also enables the radiomics shape features).
    bin_count : int
        Grey levels for the radiomics texture matrices.
    pixels_side : int
        Side of the down-sampled pixel grid in the texture set.
    models : tuple of {"lightgbm", "random_forest", "logistic", "svm"}
        Model families Optuna may choose from.
    ensemble : bool
        Also try soft-voting ensembles of the best configuration of each family, kept
        only if they beat the best single model on out-of-fold development predictions.
    n_trials : int
        Optuna trials at most.
    tuning_fraction : float
        Share of the rung's time budget the search may use.
    max_seconds : float or None
        The rung's own time allotment when the fit has no budget (a baseline should be the cheap first
        answer); None: no bound.
    threshold : {"balanced_accuracy", "accuracy", "fixed"}
        Binary tasks: the decision threshold maximises this on out-of-fold development
        predictions ("fixed": 0.5).
    max_abs_correlation : float
        Drop a feature nearly collinear (|r| above this) with one already kept.
    colour_space : {"lab", "rgb"}
        Colour images: besides each of R, G and B's features, also CIE L*a*b* colour statistics
        (``"lab"``), or only R, G and B.
    """

    feature_sets: tuple[str, ...] = FEATURE_SETS
    radiomics_filters: tuple[str, ...] = ()
    roi: str = "mask"
    bin_count: int = 32
    pixels_side: int = 14
    models: tuple[str, ...] = ("lightgbm", "random_forest", "logistic", "svm")
    ensemble: bool = True
    n_trials: int = 20
    tuning_fraction: float = 0.5
    max_seconds: float | None = 600.0
    threshold: str = "accuracy"
    max_abs_correlation: float = 0.98
    colour_space: str = "lab"

    def __post_init__(self) -> None:
        from automed.models.tabular import MODELS

        owner = "the classical classification rung"
        for name in self.feature_sets or ("",):
            check_choice(owner, "feature_sets", name, FEATURE_SETS)
        for name in self.radiomics_filters:
            check_choice(owner, "radiomics_filters", name, ("LoG", "Wavelet"))
        for name in self.models or ("",):
            check_choice(owner, "models", name, MODELS)
        check_choice(owner, "threshold", self.threshold, THRESHOLDS)
        check_choice(owner, "roi", self.roi, ROIS)
        check_range(owner, "bin_count", self.bin_count, 4, 256)
        check_range(owner, "pixels_side", self.pixels_side, 2, 64)
        check_range(owner, "n_trials", self.n_trials, 1)
        check_range(owner, "tuning_fraction", self.tuning_fraction, 0.0, 0.9)
        if self.max_seconds is not None:
            check_range(owner, "max_seconds", self.max_seconds, 1.0)
        check_range(owner, "max_abs_correlation", self.max_abs_correlation, 0.5, 1.0)
        check_choice(owner, "colour_space", self.colour_space, ("lab", "rgb"))


class ClassicalClassifierRung(Rung):
    """Handcrafted image features with a tuned, calibrated tabular classifier."""

    name = "classical"
    tasks = ("classification",)
    export_as = "pipeline"
    Params = ClassicalClassifierParams

    def default_allotment(self) -> float | None:
        return self.params.max_seconds

    def search_space(self, trial: Any, ordinal: bool = False) -> dict[str, Any]:
        from automed.models.tabular import suggest_config

        return suggest_config(trial, self.params.models, ordinal)

    def plan(self, context: FitContext) -> RungPlan:
        """The features, timed on a probe of the dataset's own images (nothing when the run's cache holds them),
        then the search, the soft-voting choice and the final model from the cost of one model fit. With an
        allotment the search takes its share of what the features leave and the later stages stop before it
        ends, so only the features and one model of each stage are sure to be spent (``min_seconds``)."""
        dataset, n_jobs, p = context.dataset, max(1, context.n_jobs), self.params
        cache = feature_cache(p, context)
        cached = cache is not None and cache.is_file()
        if cached:  # a fit again in the same run folder: its features are known, and cost nothing
            per_image, n_features = 0.0, varying_columns(np.load(cache, allow_pickle=False)["X"])
        else:
            per_image, n_features = probe_features(p, dataset)  # the features that vary over the probe
        features_s = per_image * len(dataset.cases) / n_jobs
        n_folds = max(2, len(context.folds))
        n_train = len(context.splits["dev"]) * (n_folds - 1) / n_folds
        fit_s = SECONDS_PER_FIT + SECONDS_PER_FIT_VALUE * n_train * n_features
        rounds = 1 if context.splits["kind"] == "official" else n_folds
        search_s = p.n_trials * rounds * fit_s
        if context.budget_s is not None:
            search_s = min(search_s, p.tuning_fraction * max(0.0, context.budget_s - features_s))
        candidates = len(p.models) if p.ensemble else 1
        after_s = candidates * n_folds * fit_s + candidates * fit_s * n_folds / (n_folds - 1)
        least = features_s + (rounds + n_folds + 2) * fit_s
        seconds = features_s + search_s + after_s
        if context.budget_s is not None:
            seconds = max(least, min(seconds, context.budget_s))
        features = "features cached" if cached else (f"{len(dataset.cases)} images x {per_image:.3f} core-seconds "
                                                     f"(timed on a probe of them) / {n_jobs} cores")
        return RungPlan(seconds, None, f"{features} + {n_features} varying features: {fit_s:.2f} s per model fit, "
                                       f"{p.n_trials} trials x {rounds} fits, then {candidates} candidate(s) x "
                                       f"{n_folds} out-of-fold fits and the final model; needs no GPU",
                        min_seconds=least)

    def fit(self, context: FitContext, plan: RungPlan | None = None) -> RungOutcome:
        started = time.monotonic()
        stages = Stages()
        dataset, splits = context.dataset, context.splits
        with stages("features"):
            names, X_all, self.extract_seconds_per_case_ = cached_features(self.params, context)
        index = {c.case_id: i for i, c in enumerate(dataset.cases)}
        class_index = {c: k for k, c in enumerate(dataset.classes)}
        y_all = np.array([class_index[c.label] for c in dataset.cases])
        dev = [index[c] for c in splits["dev"]]
        test = [index[c] for c in splits["test"]]
        keep = redundant_free_columns(X_all[dev], self.params.max_abs_correlation)
        X, names = X_all[:, keep], [names[j] for j in keep]
        log.info("classical: %d features kept of %d", len(keep), X_all.shape[1])

        deadline = None if context.budget_s is None else started + context.budget_s
        timer = FitTimer()
        if plan is not None and "replay_config" in plan.settings:  # automed fit --replay: another run's model
            candidates, search = [plan.settings["replay_config"]], {"n_trials": 0, "note": "replayed"}
        else:
            with stages("search"):
                candidates, search = self._search(context, X, y_all, index, deadline, timer)
        with stages("out-of-fold predictions and the soft-voting choice"):
            config, oof, search["ensemble"] = self._choose(context, candidates, X, y_all, index, deadline, timer)
        with stages("final model"):
            final = PlattCalibrated(self._model(config, context).fit(X[dev], y_all[dev]), len(dataset.classes))
        final.fit_scaling(oof, y_all[dev])
        oof = final.rescale(oof)
        threshold = choose_threshold(self.params.threshold, y_all[dev], oof) if len(dataset.classes) == 2 else None
        t0 = time.monotonic()
        proba = final.predict_proba(X[test])
        predict_s = (time.monotonic() - t0) / max(len(test), 1) + self.extract_seconds_per_case_

        summary = classification_summary(y_all[test], proba, dataset.classes, threshold, context.random_state)
        sites = {dataset.cases[i].site for i in test}
        per_site = {}
        if sites != {None}:
            for site in sorted(s for s in sites if s is not None):
                rows = [k for k, i in enumerate(test) if dataset.cases[i].site == site]
                per_site[site] = classification_summary(y_all[test][rows], proba[rows], dataset.classes, threshold,
                                                        context.random_state, n_resamples=200)
        importances = feature_importances(final, names)
        self._save(context.folder, final, names, threshold, dataset.classes)
        metric = dict(summary[context.metric], name=context.metric, n=summary["n"])
        return RungOutcome(
            per_case=case_probabilities(splits["test"], y_all[test], proba, dataset.classes),
            validation_per_case=case_probabilities(splits["dev"], y_all[dev], oof, dataset.classes),
            summary={"metric": metric, "per_class": summary["per_class"],
                     "test": {k: summary[k] for k in TEST_SCORES},
                     "per_site": per_site, "threshold": threshold, "top_features": importances[:20]},
            details={"model": config, "search": search, "n_features": len(names),
                     "n_features_extracted": int(X_all.shape[1]), "feature_sets": list(self.params.feature_sets),
                     "calibration": "Platt scaling per class, learned on out-of-fold development predictions",
                     "calibrated_classes": [dataset.classes[k] for k in np.flatnonzero(~final.identity_)],
                     "final_model": "refitted on all development cases", "stage_seconds": stages.seconds,
                     "seconds_per_fit": timer.mean_seconds()},
            predict_seconds_per_case=predict_s,
        )

    # -- search, calibration, threshold --------------------------------------------------

    def _model(self, config: dict[str, Any], context: FitContext) -> Any:
        from automed.models.tabular import build_tabular_classifier

        return build_tabular_classifier(config, context.random_state, context.n_jobs)

    def _search(self, context: FitContext, X: np.ndarray, y: np.ndarray, index: dict[str, int],
                deadline: float | None, timer: FitTimer) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """The best configuration of each model family, best first, found by an Optuna search that ends by
        its share of the time left before ``deadline`` (a trial that would pass that end is not continued)."""
        import optuna
        from optuna.trial import TrialState

        splits = context.splits
        if splits["kind"] == "official":
            rounds = [([index[c] for c in splits["train"]], [index[c] for c in splits["val"]])]
            scored_on = "the official validation split"
        else:
            rounds = [([index[c] for c in f["train"]], [index[c] for c in f["val"]]) for f in context.folds]
            scored_on = f"{len(rounds)}-fold cross-validation of the development cases"
        n_classes = len(context.dataset.classes)
        timeout = None if deadline is None else max(1.0, (deadline - time.monotonic()) * self.params.tuning_fraction)
        search_end = None if timeout is None else time.monotonic() + timeout
        stopped: list[int] = []

        def objective(trial: optuna.Trial) -> float:
            config = self.search_space(trial, context.ordinal)
            scores = []
            for train, val in rounds:
                projected = timer.seconds(config)
                if (search_end is not None and projected is not None and time.monotonic() + projected > search_end
                        and trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))):
                    stopped.append(trial.number)  # its next fit would end after the search's time: no use
                    trial.study.stop()
                    raise optuna.TrialPruned(f"a {config['model']} fit takes about {projected:.1f} s, past the "
                                             "search's end")
                with timer.timing(config):
                    model = self._model(config, context).fit(X[train], y[train])
                proba = _full_proba(model, X[val], n_classes)
                scores.append(classification_scores(y[val], proba, 0.5 if n_classes == 2 else None)[context.metric])
            return float(np.mean(scores))

        study = open_study(f"{self.name}-classification", context.optuna_storage, context.random_state, about={
            "rung": self.name, "task": "classification", "metric": context.metric,
            "measured_on": "cross-validation folds of the training cases"})
        optimize_within(study, SearchObjective(objective), self.params.n_trials, timeout, context.progress)
        best = study.best_trial
        done = sorted((t for t in study.trials if t.value is not None), key=lambda t: -t.value)
        per_family = {}
        for trial in done:  # best configuration of each model family, best first
            per_family.setdefault(trial.params["model"],
                                  self.search_space(optuna.trial.FixedTrial(trial.params), context.ordinal))
        info = {"n_trials": len(study.trials), "best_value": best.value, "metric": context.metric,
                "scored_on": scored_on, "timeout_s": timeout, "stopped_trials": stopped,
                "best_per_family": {t.params["model"]: t.value for t in done[::-1]}}
        log.info("classical: search done, %d trials, best %s %.4f with %s", len(study.trials), context.metric,
                 best.value, best.params)
        return list(per_family.values()), info

    def _choose(self, context: FitContext, candidates: list[dict[str, Any]], X: np.ndarray, y: np.ndarray,
                index: dict[str, int], deadline: float | None,
                timer: FitTimer) -> tuple[dict[str, Any], np.ndarray, list[dict[str, Any]]]:
        """The best single configuration, or a greedy soft-voting ensemble of the families' best,
        judged on out-of-fold predictions of the development cases. A candidate whose out-of-fold fits
        and the final refit would end after ``deadline`` is not tried."""

        dev_y = y[[index[c] for c in context.splits["dev"]]]
        threshold = 0.5 if len(context.dataset.classes) == 2 else None

        def score(proba: np.ndarray) -> float:
            return classification_scores(dev_y, proba, threshold)[context.metric]

        best = candidates[0]
        best_oof = self._out_of_fold(context, best, X, y, index, timer)
        history = [{"members": [best["model"]], context.metric: score(best_oof)}]
        if not self.params.ensemble or len(candidates) < 2:
            return best, best_oof, history
        members, oofs = [best], [best_oof]
        # the final model is fitted on all development cases: about n_folds / (n_folds - 1) times a fold's fit
        refit = len(context.folds) / max(1, len(context.folds) - 1)
        for candidate in candidates[1:]:
            projected = [timer.seconds(m) for m in (*members, candidate)]
            if deadline is not None and None not in projected and time.monotonic() + projected[-1] * len(
                    context.folds) + refit * sum(projected) > deadline:
                history.append({"members": [m["model"] for m in members + [candidate]],
                                "skipped": f"its fits would end after the rung's allotment ({projected[-1]:.1f} s "
                                           f"per fit)"})
                continue
            oof = self._out_of_fold(context, candidate, X, y, index, timer)
            trial = np.mean(oofs + [oof], axis=0)
            value = score(trial)
            history.append({"members": [m["model"] for m in members + [candidate]], context.metric: value})
            if value > score(np.mean(oofs, axis=0)):
                members, oofs = members + [candidate], oofs + [oof]
        if len(members) == 1:
            return best, best_oof, history
        return {"model": "ensemble", "class_weight": "none", "members": members}, np.mean(oofs, axis=0), history

    def _out_of_fold(self, context: FitContext, config: dict[str, Any], X: np.ndarray, y: np.ndarray,
                     index: dict[str, int], timer: FitTimer) -> np.ndarray:
        """Raw out-of-fold probabilities of the development cases (in ``splits["dev"]`` order)."""
        dev_ids = context.splits["dev"]
        position = {c: k for k, c in enumerate(dev_ids)}
        oof = np.zeros((len(dev_ids), len(context.dataset.classes)))
        for fold in context.folds:
            with timer.timing(config):
                model = self._model(config, context).fit(X[[index[c] for c in fold["train"]]],
                                                         y[[index[c] for c in fold["train"]]])
            oof[[position[c] for c in fold["val"]]] = _full_proba(model, X[[index[c] for c in fold["val"]]],
                                                                  oof.shape[1])
        return oof

    def _save(self, folder: Path, model: Any, names: list[str], threshold: float | None,
              classes: tuple[str, ...]) -> None:
        import joblib

        joblib.dump(model, folder / "model.joblib")
        write_record(folder / "model.json", self.params, feature_names=names, threshold=threshold,
                     classes=list(classes))

    # -- prediction ----------------------------------------------------------------------

    @classmethod
    def chosen(cls, details: dict[str, Any]) -> dict[str, Any]:
        """The model configuration its search chose."""
        return {"replay_config": details["model"]} if isinstance(details.get("model"), dict) else {}

    @classmethod
    def load(cls, folder: Path) -> ClassicalClassifierRung:
        """The fitted rung saved in ``folder``. ``model.joblib`` is a pickle: load trusted runs only."""
        import joblib

        params, meta = read_record(folder / "model.json", ClassicalClassifierParams,
                                   ("feature_names", "threshold", "classes"))
        rung = cls(params)
        rung.model_ = joblib.load(folder / "model.joblib")
        rung.feature_names_ = meta["feature_names"]
        rung.threshold_ = meta["threshold"]
        rung.classes_ = tuple(meta["classes"])
        return rung

    def predict_proba(self, dataset: Any, cases: list[Any], n_jobs: int = 1, progress: bool = False) -> np.ndarray:
        """Class probabilities of ``cases`` of ``dataset``, shape ``(n_cases, n_classes)``."""
        from automed.errors import DataError

        rows = features_of(self.params, dataset, cases, n_jobs, progress)
        missing = sorted(set(self.feature_names_) - set(rows[0]))
        if missing:
            raise DataError(f"{where(dataset, cases[0])}: features {missing[:3]} are missing; the image does not "
                            "have the dimensionality the run was fitted on.")
        X = np.array([[row[n] for n in self.feature_names_] for row in rows], dtype=np.float64)
        return self.model_.predict_proba(X)


class FitTimer:
    """Measured seconds of the model fits of a rung, by model family, to project the next fit's."""

    def __init__(self) -> None:
        self._seconds: dict[str, list[float]] = {}

    @contextmanager
    def timing(self, config: dict[str, Any]) -> Iterator[None]:
        """Time the fit of ``config`` inside the block (recorded only when it ends without an error)."""
        start = time.monotonic()
        yield
        self._seconds.setdefault(config["model"], []).append(time.monotonic() - start)

    def mean_seconds(self) -> dict[str, float]:
        """Mean seconds of one fit, per model family timed."""
        return {model: float(np.mean(timed)) for model, timed in self._seconds.items()}

    def seconds(self, config: dict[str, Any]) -> float | None:
        """The projected seconds of one fit of ``config``: its family's slowest so far (an ensemble: the sum of
        its members'); None while a family in it has not been timed."""
        if config["model"] == "ensemble":
            parts = [self.seconds(m) for m in config["members"]]
            return None if None in parts else sum(parts)
        timed = self._seconds.get(config["model"])
        return max(timed) if timed else None


def _full_proba(model: Any, X: np.ndarray, n_classes: int) -> np.ndarray:
    proba = np.zeros((len(X), n_classes))
    proba[:, np.asarray(model.classes_, dtype=int)] = model.predict_proba(X)
    return proba
