"""Tabular classifiers for the classical classification rung: search space and builders."""

from __future__ import annotations

from typing import Any

__all__ = ["MODELS", "suggest_config", "build_tabular_classifier"]

MODELS = ("lightgbm", "random_forest", "logistic")


def suggest_config(trial: Any, models: tuple[str, ...]) -> dict[str, Any]:
    """A model family, its hyperparameters and the imbalance handling, suggested by an Optuna trial."""
    model = trial.suggest_categorical("model", list(models))
    config: dict[str, Any] = {"model": model,
                              "class_weight": trial.suggest_categorical("class_weight", ["none", "balanced"])}
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
    else:
        config |= {
            "C": trial.suggest_float("lr_C", 1e-3, 10.0, log=True),
            "l1_ratio": trial.suggest_categorical("lr_l1_ratio", [0.0, 0.5, 1.0]),
        }
    return config


def build_tabular_classifier(config: dict[str, Any], random_state: int, n_jobs: int) -> Any:
    """An unfitted scikit-learn classifier for ``config`` (from :func:`suggest_config`)."""
    params = {k: v for k, v in config.items() if k not in ("model", "class_weight")}
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

    return make_pipeline(StandardScaler(), LogisticRegression(
        C=params["C"], l1_ratio=params["l1_ratio"], solver="saga", max_iter=3000, class_weight=class_weight,
        random_state=random_state))
