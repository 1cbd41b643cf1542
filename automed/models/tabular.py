"""Tabular classifiers for the classical classification rung: search space and builders."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["LOGISTIC_MAX_ITER", "MODELS", "PlattCalibrated", "build_tabular_classifier", "feature_importances",
           "suggest_config"]

MODELS = ("lightgbm", "random_forest", "logistic", "svm")
LOGISTIC_MAX_ITER = 300
"""Iterations a logistic regression may take. With an L1 share, saga creeps on for thousands of iterations on a few
hundred standardised image features. Measured on BreastMNIST's 780 images (593 features, 3-fold out-of-fold AUC, 2
cores): 300 iterations take 4.5 s per 3 fits at every C and L1 share tried, 3,000 take 9 to 36 s, and the AUC differs
by at most 0.008 (300 was the better at C=3). One that stops here says so once in the log (``ConvergenceWarning``)."""


def suggest_config(trial: Any, models: tuple[str, ...], ordinal: bool = False) -> dict[str, Any]:
    """A model family, its hyperparameters and the imbalance handling, suggested by an Optuna trial;
    for ``ordinal`` classes also whether to fit it as a :class:`~automed.models.ordinal.CumulativeOrdinal`."""
    model = trial.suggest_categorical("model", list(models))
    config: dict[str, Any] = {"model": model,
                              "class_weight": trial.suggest_categorical("class_weight", ["none", "balanced"])}
    if ordinal:
        config["ordinal"] = trial.suggest_categorical("ordinal", [False, True])
    if model == "lightgbm":
        config |= {
            "n_estimators": trial.suggest_int("lgb_n_estimators", 100, 600, step=100),
            "learning_rate": trial.suggest_float("lgb_learning_rate", 0.01, 0.2, log=True),
            "num_leaves": trial.suggest_int("lgb_num_leaves", 4, 64, log=True),
            "min_child_samples": trial.suggest_int("lgb_min_child_samples", 5, 50, log=True),
            "colsample_bytree": trial.suggest_float("lgb_colsample_bytree", 0.2, 1.0),
            "subsample": trial.suggest_float("lgb_subsample", 0.5, 1.0),
            "reg_lambda": trial.suggest_float("lgb_reg_lambda", 1e-3, 10.0, log=True),
        }
    elif model == "random_forest":
        config |= {
            "n_estimators": trial.suggest_int("rf_n_estimators", 100, 500, step=100),
            "max_features": trial.suggest_categorical("rf_max_features", ["sqrt", "log2", 0.2]),
            "min_samples_leaf": trial.suggest_int("rf_min_samples_leaf", 1, 10, log=True),
        }
    elif model == "svm":
        config |= {"C": trial.suggest_float("svm_C", 0.1, 100.0, log=True)}
    else:
        config |= {
            "C": trial.suggest_float("lr_C", 1e-3, 10.0, log=True),
            "l1_ratio": trial.suggest_categorical("lr_l1_ratio", [0.0, 0.5, 1.0]),
        }
    return config


def build_tabular_classifier(config: dict[str, Any], random_state: int, n_jobs: int) -> Any:
    """An unfitted scikit-learn classifier for ``config`` (from :func:`suggest_config`).

    A config ``{"model": "ensemble", "members": [config, ...]}`` gives a soft-voting
    ensemble (probabilities averaged) of its members; ``"ordinal": True`` wraps the model in
    :class:`~automed.models.ordinal.CumulativeOrdinal`.
    """
    if config.get("ordinal"):
        from automed.models.ordinal import CumulativeOrdinal

        return CumulativeOrdinal(build_tabular_classifier({**config, "ordinal": False}, random_state, n_jobs))
    if config["model"] == "ensemble":
        from sklearn.ensemble import VotingClassifier

        members = [(f"{m['model']}_{i}", build_tabular_classifier(m, random_state, n_jobs))
                   for i, m in enumerate(config["members"])]
        return VotingClassifier(members, voting="soft")
    params = {k: v for k, v in config.items() if k not in ("model", "class_weight", "ordinal")}
    class_weight = None if config["class_weight"] == "none" else config["class_weight"]
    if config["model"] == "lightgbm":
        from lightgbm import LGBMClassifier

        return LGBMClassifier(**params, class_weight=class_weight, subsample_freq=1, random_state=random_state,
                              n_jobs=n_jobs, deterministic=True, force_row_wise=True, verbose=-1)
    if config["model"] == "random_forest":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(**params, class_weight=class_weight, random_state=random_state, n_jobs=n_jobs)
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if config["model"] == "svm":  # probabilities by sigmoid calibration, as scikit-learn recommends
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.svm import SVC

        svc = SVC(C=params["C"], gamma="scale", class_weight=class_weight, random_state=random_state)
        return make_pipeline(StandardScaler(), CalibratedClassifierCV(svc, method="sigmoid", cv=3, ensemble=False))
    return make_pipeline(StandardScaler(), LogisticRegression(
        C=params["C"], l1_ratio=params["l1_ratio"], solver="lbfgs" if params["l1_ratio"] == 0 else "saga",
        max_iter=LOGISTIC_MAX_ITER, class_weight=class_weight,
        random_state=random_state))


class PlattCalibrated:
    """A fitted classifier whose probabilities are rescaled one-vs-rest by Platt scaling.

    The scaling is learned from the rung's own out-of-fold predictions, so no model is
    refitted on a fraction of an already small development set (which is what
    ``CalibratedClassifierCV`` would do, and on a few dozen images its inner models can
    be degenerate enough to invert the calibration). A class whose fitted slope is not
    positive keeps its raw probabilities.

    Parameters
    ----------
    model : fitted classifier with ``predict_proba``
    n_classes : int
    """

    def __init__(self, model: Any, n_classes: int) -> None:
        self.model = model
        self.n_classes = n_classes

    def fit_scaling(self, oof_proba: np.ndarray, y: np.ndarray) -> PlattCalibrated:
        """Learn one ``(slope, intercept)`` per class from out-of-fold probabilities."""
        from sklearn.linear_model import LogisticRegression

        self.scaling_ = np.tile([1.0, 0.0], (self.n_classes, 1))
        self.identity_ = np.ones(self.n_classes, dtype=bool)
        for k in range(self.n_classes):
            target = (y == k).astype(int)
            if target.min() == target.max():
                continue
            fit = LogisticRegression(C=1e4).fit(_logit(oof_proba[:, k])[:, None], target)
            if fit.coef_[0, 0] > 0:
                self.scaling_[k] = fit.coef_[0, 0], fit.intercept_[0]
                self.identity_[k] = False
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        raw = np.zeros((len(X), self.n_classes))
        raw[:, np.asarray(self.model.classes_, dtype=int)] = self.model.predict_proba(X)
        return self.rescale(raw)

    def rescale(self, raw: np.ndarray) -> np.ndarray:
        """Apply the learned scaling to raw probabilities and renormalise the rows."""
        scaled = raw.copy()
        for k in np.flatnonzero(~self.identity_):
            slope, intercept = self.scaling_[k]
            scaled[:, k] = 1.0 / (1.0 + np.exp(-(slope * _logit(raw[:, k]) + intercept)))
        return scaled / scaled.sum(axis=1, keepdims=True)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def feature_importances(model: PlattCalibrated, names: list[str]) -> list[dict[str, Any]]:
    """Feature importances of the fitted model, summing to 1 (empty for models without them, e.g. an RBF SVM)."""
    values = _model_importance(model.model)
    if values is None:
        return []
    order = np.argsort(values)[::-1]
    return [{"feature": names[j], "importance": float(values[j])} for j in order]


def _model_importance(est: Any) -> np.ndarray | None:
    """Split gain / impurity importance, mean |coefficient|, or the mean over an ensemble's (or an
    ordinal model's) members."""
    if hasattr(est, "voting") or hasattr(est, "estimator") and hasattr(est, "estimators_"):
        parts = [v for v in (_model_importance(member) for member in est.estimators_) if v is not None]
        return np.mean(parts, axis=0) if parts else None
    last = est.steps[-1][1] if hasattr(est, "steps") else est
    if hasattr(last, "feature_importances_"):
        values = np.asarray(last.feature_importances_, dtype=float)
    else:
        try:
            values = np.abs(last.coef_).mean(axis=0)
        except AttributeError:  # kernel SVMs have no per-feature weights
            return None
    return values / values.sum() if values.sum() > 0 else values
