"""Cross-validation folds, grouped by patient when groups are known."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from automed.errors import DataError

__all__ = ["check_fold_count", "holdout_split", "inner_split", "label_subset", "load_folds", "training_subset", "make_folds", "read_folds",
           "stratified_folds"]

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


def training_subset(splits: dict, fraction: float, groups: dict[str, str | None], random_state: int = 0) -> dict:
    """``splits`` reduced to fold 0, trained on a ``fraction`` of its training cases and validated on its validation
    cases unchanged (so every fraction is scored on the same cases).

    Whole patient groups (``groups``: case id -> group, None: the case alone) are taken in one seeded order until
    the fraction is reached, so a smaller fraction's cases lie inside a larger one's.
    """
    fold = splits["folds"][0]
    by_group: dict[str, list[str]] = {}
    for case in sorted(fold["train"]):
        by_group.setdefault(groups.get(case) or case, []).append(case)
    target = max(1, int(np.ceil(fraction * len(fold["train"]))))
    keep: list[str] = []
    for group in np.random.default_rng(random_state).permutation(sorted(by_group)):
        if len(keep) >= target:
            break
        keep += by_group[group]
    keep = sorted(keep)
    return {**splits, "folds": [{"train": keep, "val": list(fold["val"])}], "n_folds": 1, "dev": keep,
            "fraction": fraction}


def _site_of(cases: Sequence[str], sites: dict[str, str]) -> list[str]:
    """The sites of ``cases`` (sorted, unique).

    Raises
    ------
    DataError
        If a case has no site, or they come from fewer than two sites.
    """
    missing = [c for c in cases if not sites.get(c)]
    if missing:
        raise DataError(f"--cv by-site needs every case's site (the 'site' column of groups.csv or the manifest); "
                        f"{len(missing)} case(s) have none, e.g. {missing[:5]}.")
    names = sorted({sites[c] for c in cases})
    if len(names) < 2:
        raise DataError(f"--cv by-site needs cases from two or more sites; every case is from site {names[0]!r}.")
    return names


def leave_site_out(splits: dict, sites: dict[str, str]) -> dict[str, dict]:
    """Segmentation: one split per site (``sites``: case id -> site), trained on every other site's cases and
    validated on the site's (``site_cases``), as a new scanner or hospital would meet the model.

    Raises
    ------
    DataError
        If a case has no site, or they come from fewer than two sites.
    """
    dev = sorted({c for fold in splits["folds"] for side in ("train", "val") for c in fold[side]})
    out = {}
    for site in _site_of(dev, sites):
        train, val = [c for c in dev if sites[c] != site], [c for c in dev if sites[c] == site]
        out[site] = {**splits, "folds": [{"train": train, "val": val}], "n_folds": 1, "dev": train, "site": site,
                     "site_cases": val, "site_cases_are": "every case of the site"}
    return out


def leave_site_out_of_development(splits: dict, sites: dict[str, str], labels: dict[str, str], n_folds: int,
                                  random_state: int = 0) -> dict[str, dict]:
    """Classification: one split per site, developed on the other sites' development cases (stratified tuning
    folds drawn again; official train/val roles kept) and tested on the site's test cases (``site_cases``); a site
    without test cases is left out.

    Raises
    ------
    DataError
        If a case has no site, they come from fewer than two sites, or no site has test cases.
    """
    dev, test = list(splits["dev"]), list(splits["test"])
    out = {}
    for site in _site_of(dev + test, sites):
        keep = sorted(c for c in dev if sites[c] != site)
        judged = sorted(c for c in test if sites[c] == site)
        if not judged:
            continue
        subset = {**splits, "dev": keep, "test": judged, "site": site, "site_cases": judged,
                  "site_cases_are": "the site's test cases",
                  "folds": stratified_folds(keep, [labels[c] for c in keep], keep, n_folds, random_state)}
        if splits.get("kind") == "official":
            subset["train"] = sorted(set(splits["train"]) & set(keep))
            subset["val"] = sorted(set(splits["val"]) & set(keep))
        out[site] = subset
    if not out:
        raise DataError("--cv by-site scores each site's test cases, and no site has any.")
    return out


def read_folds(path: str | Path, case_ids: Sequence[str], groups: Sequence[str | None],
               n_folds: int | None = None) -> list[dict[str, list[str]]]:
    """Folds fixed in a JSON file, in nnU-Net's ``splits_final.json`` layout:
    ``[{"train": [case ids], "val": [case ids]}, ...]`` (at least two folds).

    So automed can be judged on exactly the folds another tool (or an earlier study) used.
    Every fold must hold every case of the dataset, in its train or its val list, and no case may
    be validated in two folds; a case validated in none (training only) is allowed and logged.

    Parameters
    ----------
    path : path
        The folds file.
    case_ids, groups : sequence
        The dataset's case ids and their patient groups (None: the case is its own group).
    n_folds : int, optional
        The number of folds the user asked for; it must then be the file's.

    Raises
    ------
    DataError
        If the file is not that layout, has a different number of folds than ``n_folds``, names a
        case the dataset lacks or a case twice in one list, has a fold with no training or no
        validation case, with a case on both sides or that leaves a case out, repeats a fold,
        validates a case in two folds, or splits a patient group between a fold's training and
        validation cases.
    """
    folds = load_folds(path)
    path = Path(path)
    if n_folds is not None:
        check_fold_count(path, folds, n_folds)
    known = set(case_ids)
    group_of = {c: g or f"case:{c}" for c, g in zip(case_ids, groups)}
    validated_in: dict[str, int] = {}
    for k, fold in enumerate(folds):
        for side in ("train", "val"):
            repeated = sorted(c for c, n in Counter(fold[side]).items() if n > 1)
            if repeated:
                raise DataError(f"{path}: fold {k} lists case(s) {repeated[:5]} more than once in its {side} list.")
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
        for j in range(k):
            if set(folds[j]["val"]) == val:
                raise DataError(f"{path}: fold {k} repeats fold {j} (the same validation cases); remove one of them.")
        again = sorted(c for c in val if c in validated_in)
        if again:
            raise DataError(f"{path}: fold {k} validates case(s) {again[:5]} that fold {validated_in[again[0]]} "
                            "validates already; a case belongs to the validation cases of one fold at most.")
        validated_in.update(dict.fromkeys(val, k))
    nowhere = sorted(known - {c for f in folds for c in f["train"] + f["val"]})
    if nowhere:
        raise DataError(f"{path}: case(s) {nowhere[:5]}{' ...' if len(nowhere) > 5 else ''} ({len(nowhere)} in all) "
                        "of the dataset are in no fold; add them to the folds file or remove them from the dataset.")
    for k, fold in enumerate(folds):
        left_out = sorted(known - set(fold["train"]) - set(fold["val"]))
        if left_out:
            raise DataError(f"{path}: fold {k} leaves out case(s) {left_out[:5]} (in neither its train nor its val "
                            "list); every fold must hold every case of the dataset.")
    never = sorted(known - set(validated_in))
    if never:
        log.warning("%s: %d case(s) are validated in no fold, only trained on: %s", path, len(never), never[:5])
    return [{"train": sorted(f["train"]), "val": sorted(f["val"])} for f in folds]


def check_fold_count(path: str | Path, folds: list[dict[str, list[str]]] | None, n_folds: int) -> None:
    """Refuse a number of folds asked for (``n_folds``, ``--folds``) that is not the folds file's.

    ``folds``: the file's folds when already loaded (None: load them).

    Raises
    ------
    DataError
        If the folds file at ``path`` does not have ``n_folds`` folds (or is not a folds file).
    """
    folds = load_folds(path) if folds is None else folds
    if len(folds) != n_folds:
        raise DataError(f"{path}: the folds file has {len(folds)} folds but {n_folds} were asked for (n_folds, "
                        f"--folds); leave n_folds out, as the folds file sets it.")


def load_folds(path: str | Path) -> list[dict[str, list[str]]]:
    """The folds of a folds file as written, checked for nnU-Net's ``splits_final.json`` layout only.

    Raises
    ------
    DataError
        If the file cannot be read or is not a list of two or more ``{"train": [...], "val": [...]}``
        objects of case-id strings.
    """
    import json

    path = Path(path)
    layout = "a folds file is a list of two or more {\"train\": [case ids], \"val\": [case ids]} objects " \
             "(nnU-Net's splits_final.json)"
    try:
        folds = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the folds file ({type(exc).__name__}: {exc}).") from exc
    if not isinstance(folds, list) or len(folds) < 2:
        raise DataError(f"{path}: {layout}; it holds {_described(folds)}.")
    for k, fold in enumerate(folds):
        if not isinstance(fold, dict) or set(fold) != {"train", "val"}:
            found = sorted(fold) if isinstance(fold, dict) else _described(fold)
            raise DataError(f"{path}: fold {k} is {found}, not an object with the keys 'train' and 'val'; {layout}.")
        for side in ("train", "val"):
            if not isinstance(fold[side], list) or not all(isinstance(c, str) for c in fold[side]):
                raise DataError(f"{path}: fold {k}'s {side} is {_described(fold[side])}, not a list of case-id "
                                f"strings; {layout}.")
    return folds


def _described(value: object) -> str:
    """What a parsed JSON value is, in JSON's words, for an error message."""
    if isinstance(value, list):
        return f"a list of {len(value)} item(s)"
    names = {dict: "an object", str: "a string", bool: "true or false", int: "a number", float: "a number",
             type(None): "null"}
    return names.get(type(value), type(value).__name__)
