"""Segmentation: one label map per image, judged by Dice on cross-validation cases."""

from __future__ import annotations

import logging
from dataclasses import fields
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from automed.tasks.base import GainOver, Inspection, Opened, Prepared, Task, about

if TYPE_CHECKING:
    from automed.recipe import Recipe
    from automed.results import RungResult
    from automed.rungs.base import FitContext, RungOutcome

__all__ = ["HeldOutFolds", "Segmentation", "SegmentationModel"]

log = logging.getLogger("automed")

_DEEP = "automed.rungs.segmentation.deep:DeepSegmentationRung"


@runtime_checkable
class SegmentationModel(Protocol):
    """A fitted segmentation rung as :func:`~automed.ladder.predict.predict_segmentation` uses it."""

    def predict(self, image: Any) -> Any:
        """The class-index map of a normalised image ``(channels, *spatial)`` on its working grid."""

    def predict_proba(self, image: Any) -> Any:
        """The class probabilities ``(n_classes, *spatial)`` of a normalised image on its working grid."""

    def class_map(self, proba: Any) -> Any:
        """The class-index map :meth:`predict` gives for the probabilities :meth:`predict_proba` gave."""


@runtime_checkable
class HeldOutFolds(Protocol):
    """A fitted segmentation rung that kept a model per cross-validation fold: the quality record reads how unsure
    it is on each validation case from the models that did not train on it."""

    def held_out_folds(self) -> int:
        """How many folds' models were kept (fold ``k`` for ``k`` below it)."""

    def predict_proba(self, image: Any, fold: int | None = None) -> Any:
        """The class probabilities of a normalised image from every model, or fold ``fold``'s."""


class Segmentation(Task):
    """Label maps of 2D images or 3D volumes (one or several channels), judged by the mean foreground Dice."""

    name = "segmentation"
    data_formats = ("auto", "msd", "nnunet", "folders", "csv")
    metrics = ("dice",)
    # The 3D U-Net is the last network climbed: on volumes it is the rung that gains most from more time,
    # and each rung's allotment is a share of what is left, so the last one inherits the time the rungs
    # below it left unused (a UNet++ skipped for time or a network stopped early). A UNet++ no better
    # than the 2D U-Net does not stop the 3D climb: 2D and 3D networks are separate climb families.
    default_rungs = ("classical", "unet2d", "unetpp", "unet3d", "ensemble")
    rungs = {
        "classical": "automed.rungs.segmentation.classical:ClassicalRung",
        # 3D volumes are segmented slice by slice along the coarsest axis, with 3D post-processing
        "unet2d": (_DEEP, {"architecture": "automed.nets.unet:UNet", "network_dims": 2, "batch_voxels": 2**18,
                           "default_max_patch": 256}),
        "unetpp": (_DEEP, {"architecture": "automed.nets.unetpp:UNetPlusPlus", "network_dims": 2,
                           "batch_voxels": 2**16, "default_max_patch": 256}),
        # six times a 2D rung's share: on the hippocampus it was the best rung and still improving when
        # its time ran out (best epoch 161 of 176 with a 4x share); skipped on 2D data
        "unet3d": (_DEEP, {"architecture": "automed.nets.unet:UNet", "network_dims": 3, "batch_voxels": 2**18,
                           "default_max_patch": 128, "cost_weight": 6.0}),
        "segresnet": (_DEEP, {"architecture": "automed.nets.segresnet:SegResNet", "network_dims": 3,
                              "batch_voxels": 2**18, "default_max_patch": 128, "cost_weight": 6.0}),
        "dynunet": (_DEEP, {"architecture": "automed.nets.dynunet:DynUNet", "network_dims": 3,
                            "batch_voxels": 2**18, "default_max_patch": 128, "cost_weight": 6.0}),
        "ensemble": "automed.rungs.segmentation.ensemble:SegmentationEnsembleRung",
    }
    recipe_options = frozenset({"folds_file", "target_spacing", "raters", "consensus", "label_fractions",
                                "site_shift"})
    predictor = "automed.ladder.predict:predict_segmentation"
    auditor = "automed.audit.segmentation:audit_segmentation"
    fitted_model = SegmentationModel
    report_sections = "automed.report.segmentation:SegmentationReport"

    def prepare(self, recipe: Recipe, data: Path, progress: bool) -> Prepared:
        from automed.data.fingerprint import compute_fingerprint
        from automed.data.splits import make_folds, read_folds
        from automed.recipe import Recipe

        dataset = self._open(recipe, data)
        ids, groups = [c.case_id for c in dataset.cases], [c.group for c in dataset.cases]
        if recipe.folds_file is not None:  # checked before the fingerprint's minutes of reading
            # n_folds left at its default takes the file's number of folds; any other must be the file's
            default_n_folds = next(f.default for f in fields(Recipe) if f.name == "n_folds")
            folds = read_folds(recipe.folds_file, ids, groups,
                               None if recipe.n_folds == default_n_folds else recipe.n_folds)
            log.info("folds: %d, read from %s", len(folds), recipe.folds_file)
        fingerprint = compute_fingerprint(dataset, recipe.random_state, progress, recipe.target_spacing)
        log.info("dataset: %d cases, %dD, classes %s, format %s", fingerprint.n_cases, fingerprint.dims,
                 fingerprint.classes, dataset.format)
        if recipe.folds_file is None:
            with about(data):
                folds = make_folds(ids, groups, recipe.n_folds, recipe.random_state)
        splits = {"kind": "cv", "n_folds": len(folds), "random_state": recipe.random_state,
                  "grouped": any(groups), "folds": folds,
                  "folds_file": None if recipe.folds_file is None else str(Path(recipe.folds_file).resolve())}
        return Prepared(dataset, fingerprint, splits, fingerprint.to_dict())

    def inspect(self, data: Path, data_format: str) -> Inspection:
        import numpy as np

        from automed.data.dataset import open_dataset
        from automed.data.fingerprint import scan_dataset

        dataset = open_dataset(data, data_format)
        fp, problems, warnings = scan_dataset(dataset)
        if fp is None:
            return Inspection([], None, problems, warnings)
        native = [r.get("native_spacing", r["spacing"]) for r in fp.cases]
        grid = f"{list(fp.target_spacing)} ({fp.spacing_note})" if fp.target_spacing else f"as stored ({fp.spacing_note})"
        lines = [f"{data}: {dataset.format} layout, {fp.n_cases} cases, {fp.dims}D, {fp.n_channels} channel(s) "
                 f"{list(fp.channel_names)}, modality {fp.modality} -> normalisation "
                 + ", ".join(f"{n}: {s}" for n, s in zip(fp.channel_names, fp.channel_normalization)),
                 f"classes {fp.classes}; voxel fractions "
                 + ", ".join(f"{k}: {v:.4f}" for k, v in fp.class_voxel_fraction.items())]
        if any(raw != cls for raw, cls in fp.label_mapping.items()):
            lines.append(f"label values mapped {fp.label_mapping}")
        lines.append(f"stored: median spacing {[round(float(s), 3) for s in np.median(native, axis=0)]}; working grid: "
                     f"median shape {list(fp.median_shape)}, spacing {grid}")
        return Inspection(lines, fp.to_dict(), problems, warnings)

    def reopen(self, recipe: Recipe, data: Path, fingerprint_record: dict[str, Any],
               splits: dict[str, Any]) -> Opened:
        from automed.data.fingerprint import Fingerprint

        return Opened(self._open(recipe, data), Fingerprint.from_dict(fingerprint_record), splits)

    @staticmethod
    def _open(recipe: Recipe, data: Path) -> Any:
        from automed.data.dataset import open_dataset

        return open_dataset(data, recipe.data_format, recipe.colour == "rgb", recipe.raters, recipe.consensus)

    def label_subset(self, opened: Opened, fraction: float, recipe: Recipe) -> dict[str, Any]:
        from automed.data.splits import training_subset

        groups = {c.case_id: c.group for c in opened.dataset.cases}
        return training_subset(opened.splits, fraction, groups, recipe.random_state)

    def site_splits(self, opened: Opened, recipe: Recipe) -> dict[str, dict[str, Any]]:
        from automed.data.splits import leave_site_out

        return leave_site_out(opened.splits, {c.case_id: c.site for c in opened.dataset.cases if c.site})

    def finish(self, folder: Path, recipe: Recipe, opened: Opened, done: tuple[RungResult, ...]) -> None:
        from automed.ladder.raters import write_rater_agreement
        from automed.quality.segmentation import write_segmentation_quality

        write_rater_agreement(folder, recipe, opened, done)
        write_segmentation_quality(folder, recipe, opened, done)

    def comparison_cases(self, recipe: Recipe, opened: Opened) -> list[str]:
        if recipe.cv == "full":
            return sorted(c.case_id for c in opened.dataset.cases)
        return list(opened.splits["folds"][0]["val"])

    def summarize(self, outcome: RungOutcome, context: FitContext, recipe: Recipe) -> dict[str, Any]:
        from automed.statistics import per_site_dice, summarize_segmentation

        if outcome.summary is not None:  # an ensemble summarises its own out-of-fold cases
            return outcome.summary
        classes = context.fingerprint.classes
        metric, per_class = summarize_segmentation(outcome.per_case, classes, recipe.include_background,
                                                   recipe.random_state)
        summary = {"metric": metric, "per_class": per_class}
        sites = {c.case_id: c.site for c in context.dataset.cases if c.site}
        if sites:
            summary["per_site"] = per_site_dice(outcome.per_case, sites, classes, recipe.include_background,
                                                recipe.random_state)
        return summary

    def comparison(self, result: RungResult, comparison_cases: list[str], recipe: Recipe,
                   fingerprint: Any) -> tuple[dict[str, Any], GainOver]:
        from automed.metrics import summarize
        from automed.statistics import case_scores

        classes = [c for c in sorted(fingerprint.classes) if recipe.include_background or c != 0]
        shared = set(comparison_cases)
        scores = {k: v for k, v in case_scores(result.per_case, classes).items() if k in shared}
        metric = {"name": result.metric["name"], "classes": result.metric["classes"],
                  **summarize(list(scores.values()), recipe.random_state)}
        cases = "every case (all folds)" if recipe.cv == "full" else "validation cases of fold 0"
        judged = {"metric": metric, "cases": cases, "n": len(scores), "case_ids": sorted(scores)}
        return judged, partial(_gain, scores=scores, classes=classes, random_state=recipe.random_state)


def _gain(base: RungResult, scores: dict[str, float], classes: list[int],
          random_state: int) -> dict[str, Any] | None:
    """Paired bootstrap difference of the per-case Dice ``scores`` over ``base``'s, on the cases both scored."""
    from automed.statistics import case_scores, paired_gain

    gain = paired_gain(case_scores(base.per_case, classes), scores, random_state)
    return None if gain is None else {"vs": base.name, **gain}
