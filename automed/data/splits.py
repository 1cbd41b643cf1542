"""Cross-validation folds, grouped by patient when groups are known."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from automed.errors import DataError

__all__ = ["make_folds"]


def make_folds(case_ids: Sequence[str], groups: Sequence[str | None], n_folds: int,
               random_state: int = 0) -> list[dict[str, list[str]]]:
    """K folds as ``[{"train": [...], "val": [...]}, ...]``.

    Cases sharing a group (patient) always land in the same fold. Without groups every
    case is its own group, so the folds are a shuffled K-fold.

    Raises
    ------
    DataError
        If there are fewer groups than folds.
    """
    from sklearn.model_selection import GroupKFold

    case_ids = list(case_ids)
    group_ids = [g if g is not None else f"case:{c}" for c, g in zip(case_ids, groups)]
    n_groups = len(set(group_ids))
    if n_groups < n_folds:
        raise DataError(
            f"{n_folds}-fold cross-validation needs at least {n_folds} cases (or patient groups); "
            f"the dataset has {n_groups}. Lower n_folds in the recipe."
        )
    splitter = GroupKFold(n_splits=n_folds, shuffle=True, random_state=random_state)
    ids = np.asarray(case_ids)
    return [
        {"train": sorted(ids[train].tolist()), "val": sorted(ids[val].tolist())}
        for train, val in splitter.split(ids, groups=group_ids)
    ]
