"""Cross-validation folds, grouped by patient when groups are known."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from automed.errors import DataError

__all__ = ["holdout_split", "inner_split", "label_subset", "make_folds", "read_folds", "stratified_folds"]

log = logging.getLogger("automed")


def inner_split(case_ids: Sequence[str], groups: Sequence[str | None], random_state: int = 0,
                max_folds: int = 5, fold: int = 0) -> dict[str, list[str]]:
    """Fold ``fold`` (the first by default) of up to ``max_folds`` grouped folds of ``case_ids``
    (a tuning split inside training cases); ``fold`` wraps around when there are fewer folds.

    Training cases of a single patient group can only be split apart; that is logged, and it
    touches tuning only, never the cases a rung is judged on.
    """
    if len(case_ids) < 2:
        raise DataError(f"a fold trains on {len(case_ids)} case, too few to also tune on: give more cases, or "
                        "raise n_folds (with n_folds equal to the number of cases every fold trains on all but one).")
    n_groups = len({g or c for g, c in zip(groups, case_ids)})
    if n_groups < 2:
        log.warning("the training cases belong to one patient group; the tuning split separates that group's cases")
        groups = [None] * len(case_ids)
        n_groups = len(set(case_ids))
    folds = make_folds(case_ids, groups, min(max_folds, n_groups), random_state)
    return folds[fold % len(folds)]


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


def holdout_split(case_ids: Sequence[str], labels: Sequence[str], groups: Sequence[str | None],
                  test_fraction: float, n_folds: int, random_state: int = 0) -> dict[str, object]:
    """A stratified, grouped test hold-out and K tuning folds over the rest.

    Returns
    -------
    dict
        ``{"kind": "holdout", "test": [...], "dev": [...], "folds": [{"train", "val"}, ...]}``;
        the test cases never appear in ``dev`` or the folds.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    from sklearn.model_selection import train_test_split

    ids = np.asarray(case_ids)
    y = np.asarray(labels)
    g = np.asarray([grp if grp is not None else f"case:{c}" for c, grp in zip(case_ids, groups)])
    try:
        if any(grp is not None for grp in groups):
            outer = StratifiedGroupKFold(n_splits=max(2, round(1 / test_fraction)), shuffle=True,
                                         random_state=random_state)
            dev_index, test_index = next(outer.split(ids, y, g))
        else:
            dev_index, test_index = train_test_split(np.arange(len(ids)), test_size=test_fraction, stratify=y,
                                                     random_state=random_state)
    except ValueError as exc:
        raise DataError(f"Cannot hold out a stratified test set of {test_fraction:.0%} from {len(ids)} cases "
                        f"({exc}); add images or raise test_fraction.") from exc
    return {"kind": "holdout", "test": sorted(ids[test_index].tolist()), "dev": sorted(ids[dev_index].tolist()),
            "folds": stratified_folds(ids[dev_index], y[dev_index], g[dev_index], n_folds, random_state)}


def stratified_folds(case_ids: Sequence[str], labels: Sequence[str], groups: Sequence[str],
                     n_folds: int, random_state: int = 0) -> list[dict[str, list[str]]]:
    """Stratified K folds that keep each group (patient) in one fold."""
    from sklearn.model_selection import StratifiedGroupKFold

    ids = np.asarray(case_ids)
    smallest = min(np.unique(np.asarray(labels), return_counts=True)[1])
    if smallest < n_folds:
        raise DataError(f"A class has only {smallest} case(s) for tuning, fewer than the {n_folds} folds; "
                        "lower n_folds in the recipe.")
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=random_state)
    return [{"train": sorted(ids[tr].tolist()), "val": sorted(ids[va].tolist())}
            for tr, va in splitter.split(ids, labels, groups)]


def label_subset(splits: dict, labels: dict[str, str], fraction: float, n_folds: int,
                 random_state: int = 0) -> dict:
    """``splits`` with a stratified ``fraction`` of the development cases; the test cases are unchanged.

    Official train/val splits keep their roles on the subset; the tuning folds are drawn again.
    """
    from sklearn.model_selection import train_test_split

    dev = list(splits["dev"])
    keep = dev if fraction >= 1 else train_test_split(dev, train_size=fraction, stratify=[labels[c] for c in dev],
                                                      random_state=random_state)[0]
    keep = sorted(keep)
    subset = {**splits, "dev": keep, "fraction": fraction,
              "folds": stratified_folds(keep, [labels[c] for c in keep], keep, n_folds, random_state)}
    if splits.get("kind") == "official":
        subset["train"] = sorted(set(splits["train"]) & set(keep))
        subset["val"] = sorted(set(splits["val"]) & set(keep))
    return subset


def read_folds(path: str | Path, case_ids: Sequence[str], groups: Sequence[str | None]) -> list[dict[str, list[str]]]:
    """Folds fixed in a JSON file, in nnU-Net's ``splits_final.json`` layout:
    ``[{"train": [case ids], "val": [case ids]}, ...]`` (at least two folds).

    So automed can be judged on exactly the folds another tool (or an earlier study) used.

    Raises
    ------
    DataError
        If the file is not that layout, names a case the dataset lacks, has a fold with no
        training or no validation case or with a case on both sides, or splits a patient
        group between a fold's training and validation cases.
    """
    import json

    path = Path(path)
    try:
        folds = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the folds file ({type(exc).__name__}: {exc}).") from exc
    if not (isinstance(folds, list) and len(folds) >= 2 and all(
            isinstance(f, dict) and all(isinstance(f.get(k), list) and all(isinstance(c, str) for c in f[k])
                                        for k in ("train", "val")) for f in folds)):
        raise DataError(f"{path}: a folds file is a list of two or more {{\"train\": [case ids], \"val\": [case ids]}} "
                        "objects (nnU-Net's splits_final.json).")
    known = set(case_ids)
    group_of = {c: g or f"case:{c}" for c, g in zip(case_ids, groups)}
    for k, fold in enumerate(folds):
        train, val = set(fold["train"]), set(fold["val"])
        unknown = sorted((train | val) - known)
        if unknown:
            raise DataError(f"{path}: fold {k} names case(s) {unknown[:5]} that the dataset does not have.")
        if not train or not val:
            raise DataError(f"{path}: fold {k} has no {'training' if not train else 'validation'} case.")
        if train & val:
            raise DataError(f"{path}: fold {k} has case(s) {sorted(train & val)[:5]} in both train and val.")
        shared = sorted({group_of[c] for c in train} & {group_of[c] for c in val})
        if shared:
            raise DataError(f"{path}: fold {k} puts patient group(s) {shared[:5]} in both train and val (leakage).")
    return [{"train": sorted(f["train"]), "val": sorted(f["val"])} for f in folds]
