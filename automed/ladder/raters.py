"""Several annotators, once every rung has finished: how well the raters agree with one another (the human
ceiling), and how well each rung agrees with each rater and with the consensus it trained on (``raters.json``).

Every mask is compared on the run's working grid, as the rungs' scores are: each rater's mask is read as the
case's label would be, the rung's saved out-of-fold mask as the report's overlays read it.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from automed._jsonio import write_json
from automed.results import RungResult

__all__ = ["RATERS_JSON", "write_rater_agreement"]

log = logging.getLogger("automed")

RATERS_JSON = "raters.json"
"""The record, in the run folder; the report reads it (as it reads ``learning_curve.json``)."""
DISAGREEMENT_Z = 3.5
"""A case whose raters agree this many robust SDs less than on the other cases is listed as disagreeing."""


def write_rater_agreement(folder: Path, recipe: Any, opened: Any, done: tuple[RungResult, ...]) -> None:
    """Write ``raters.json`` into the run ``folder`` when the dataset's cases have several raters (else nothing)."""
    from automed.robust import robust_z
    from automed.data.loading import load_case
    from automed.data.normalize import map_labels
    from automed.data.oof import saved_prediction
    from automed.metrics import segmentation_scores
    from automed.statistics import summarize_segmentation

    cases = [c for c in opened.dataset.cases if c.raters]
    if not cases:
        return
    fingerprint = opened.fingerprint
    classes, n_classes = fingerprint.classes, fingerprint.n_classes
    scored = [k for k in sorted(classes) if recipe.include_background or k != 0]
    names = [name for name, _ in cases[0].raters]
    pairs: list[dict[str, Any]] = []
    against: dict[str, dict[str, list[dict[str, Any]]]] = {r.name: {n: [] for n in (*names, "consensus")}
                                                             for r in done}
    for case in cases:
        def read(**change: Any) -> Any:
            return load_case(replace(case, **change), fingerprint.n_channels, fingerprint.channels_in_one_file,
                             fingerprint.target_spacing)

        loaded = read()
        spacing = loaded.geometry.spacing[::-1]
        masks = {name: map_labels(read(raters=(), label_path=path).label, fingerprint.label_mapping)
                 for name, path in case.raters}
        masks["consensus"] = map_labels(loaded.label, fingerprint.label_mapping)
        for a, b in combinations(names, 2):
            pairs.append({"case_id": case.case_id, "raters": [a, b],
                          "scores": _keyed(segmentation_scores(masks[a], masks[b], n_classes, spacing))})
        for result in done:
            oof = folder / "rungs" / result.name / "oof"
            if not oof.is_dir() or case.case_id not in {c["case_id"] for c in result.per_case}:
                continue
            pred = saved_prediction(oof, case.case_id, fingerprint)
            for name, mask in masks.items():
                against[result.name][name].append(
                    {"case_id": case.case_id, "scores": _keyed(segmentation_scores(pred, mask, n_classes, spacing))})

    def summary(per_case: list[dict[str, Any]]) -> dict[str, Any]:
        metric, per_class = summarize_segmentation(per_case, classes, recipe.include_background, recipe.random_state)
        return {"metric": metric, "per_class": per_class}

    per_case = _over_pairs(pairs)
    agreement = {c["case_id"]: float(np.mean([c["scores"][str(k)]["dice"] for k in scored])) for c in per_case}
    z = robust_z(np.array(list(agreement.values())))
    disagreeing = [{"case_id": case, "inter_rater_dice": agreement[case], "z": float(-zi)}
                   for case, zi in zip(agreement, z) if -zi > DISAGREEMENT_Z]
    rungs = {}
    for name, versus in against.items():
        if not versus["consensus"]:
            continue
        per_rater = {rater: summary(per_case)["metric"] for rater, per_case in versus.items() if rater != "consensus"}
        rungs[name] = {"vs_consensus": summary(versus["consensus"])["metric"], "vs_rater": per_rater,
                       "n_cases": len(versus["consensus"])}
    record = {"raters": names, "consensus": cases[0].consensus, "n_cases": len(cases),
              "inter_rater": summary(per_case),
              "rater_vs_others": {name: summary(_over_pairs([p for p in pairs if name in p["raters"]]))["metric"]
                                  for name in names},
              "per_case": [{"case_id": c, "inter_rater_dice": v} for c, v in agreement.items()],
              "disagreeing_cases": sorted(disagreeing, key=lambda d: d["inter_rater_dice"]), "rungs": rungs}
    write_json(folder / RATERS_JSON, record)
    log.info("raters: %d raters, inter-rater Dice %.3f; consensus %s", len(names),
             record["inter_rater"]["metric"]["mean"], record["consensus"])


def _keyed(scores: dict[Any, dict[str, float]]) -> dict[str, dict[str, float]]:
    return {str(k): v for k, v in scores.items()}


def _over_pairs(pairs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per case: each class's Dice and HD95 averaged over the case's pairs of raters (so that a CI is
    over cases, which are independent, not over pairs of one case, which are not)."""
    by_case: dict[str, list[dict[str, Any]]] = {}
    for pair in pairs:
        by_case.setdefault(pair["case_id"], []).append(pair)
    out = []
    for case, mine in by_case.items():
        keys = mine[0]["scores"]
        scores = {k: {m: float(np.nanmean([p["scores"][k][m] for p in mine]))
                      if any(np.isfinite(p["scores"][k][m]) for p in mine) else float("nan") for m in ("dice", "hd95")}
                  for k in keys}
        out.append({"case_id": case, "scores": scores})
    return out
