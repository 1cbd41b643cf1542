"""What the deep segmentation rungs share: planning, Optuna search, final training, evaluation.

A deep rung (``unet2d``, ``unetpp``, ``unet3d``) only names its network and defaults.
Fitting, in order:

1. **plan** (before the rung starts): timed probe steps estimate seconds per epoch and
   training memory; the configuration is shrunk (batch, patch, width) to fit the memory
   limit and the number of trials and epochs to fit the time allotted, or the rung is
   skipped with the reason. The plan is saved, so a resumed fit follows it unchanged;
2. **search**: an Optuna TPE study (SQLite, one per rung) on an inner split of fold 0's
   training cases, pruned on per-epoch validation Dice. The first trial is a sound
   default. Interrupted trials continue from their last checkpoint;
3. **final training** of the best configuration on the same inner split, with early
   stopping on the inner validation cases (one per fold with ``cv: full``);
4. **evaluation** on the comparison cases (fold 0's validation cases, or every fold),
   with mirrored test-time augmentation and post-processing chosen on the inner
   validation cases, never on the comparison cases.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np

from automed._params import check_choice, check_range
from automed.errors import RecipeError
from automed.models.search import finished_trials, open_study, optimize_within
from automed.rungs.base import FitContext, Rung, RungOutcome, RungPlan
from automed.rungs.records import read_record, write_record

__all__ = ["DeepParams", "DeepSegmentationRung", "evaluate_cases"]

log = logging.getLogger("automed")
LOSSES = ("dice_ce", "dice_focal")
AUGMENTATIONS = ("none", "light", "medium", "strong")
COMMON_HYPERPARAMETERS = ("lr", "width", "batch_size", "loss", "augmentation")  # the rest belong to the architecture
PROBE_OVERHEAD_S = 5.0  # one probe (model build, a few steps) per trial and per final training


@dataclass(frozen=True)
class DeepParams:
    """Parameters of a deep segmentation rung.

    Parameters
    ----------
    n_trials : int
        Optuna trials at most (fewer when the allotment is short; below 2 the default
        configuration is trained without a search).
    search_fraction : float
        Share of the allotment the search may use; the final training gets the rest.
    max_epochs, min_epochs : int
        Epoch bounds; within them the time allotted decides. A rung that cannot train
        ``min_epochs`` in its allotment is shrunk, then skipped.
    iterations : int
        Optimiser steps per epoch.
    patience_fraction : float
        Early stopping after this share of the planned epochs without a validation gain.
    widths, depths, batch_sizes : tuple of int
        Searched first-level channels, resolution levels (U-Net only) and batch sizes.
        Empty ``batch_sizes``: two sizes near the rung's ``batch_voxels`` per batch.
    losses, augmentations : tuple of str
        Searched losses (``dice_ce``, ``dice_focal``) and augmentation strengths.
    lr_min, lr_max : float
        Searched AdamW learning-rate range (log scale, poly decay over the epochs).
    max_patch : int
        Largest patch side; the patch is the median image size rounded up to the
        network's size divisor, capped here.
    tta : bool
        Mirrored test-time augmentation when evaluating and predicting.
    validation_fraction : float
        Share of the training cases held out for early stopping and search.
    max_validation_cases : int
        Cap on those cases (validation runs every epoch).
    """

    n_trials: int = 4
    search_fraction: float = 0.35
    max_epochs: int = 300
    min_epochs: int = 6
    iterations: int = 40
    patience_fraction: float = 0.3
    widths: tuple[int, ...] = (16, 32)
    depths: tuple[int, ...] = (4, 5)
    batch_sizes: tuple[int, ...] = ()
    losses: tuple[str, ...] = LOSSES
    augmentations: tuple[str, ...] = ("light", "medium", "strong")
    lr_min: float = 1e-3
    lr_max: float = 1e-2
    max_patch: int = 0
    tta: bool = True
    validation_fraction: float = 0.15
    max_validation_cases: int = 20

    def __post_init__(self) -> None:
        owner = "a deep rung"
        check_range(owner, "n_trials", self.n_trials, 0)
        check_range(owner, "search_fraction", self.search_fraction, 0.0, 0.9)
        check_range(owner, "min_epochs", self.min_epochs, 1)
        check_range(owner, "max_epochs", self.max_epochs, self.min_epochs)
        check_range(owner, "iterations", self.iterations, 1)
        check_range(owner, "patience_fraction", self.patience_fraction, 0.0, 1.0)
        check_range(owner, "lr_min", self.lr_min, 1e-6)
        check_range(owner, "lr_max", self.lr_max, self.lr_min)
        check_range(owner, "max_patch", self.max_patch, 0)
        check_range(owner, "validation_fraction", self.validation_fraction, 0.05, 0.5)
        check_range(owner, "max_validation_cases", self.max_validation_cases, 1)
        for name, values, low in (("widths", self.widths, 4), ("depths", self.depths, 2), ("batch_sizes", self.batch_sizes, 1)):
            for value in values:
                check_range(owner, name, value, low)
        if not self.widths or not self.depths:
            raise RecipeError("The 'widths' and 'depths' parameters of a deep rung need at least one value.")
        for loss in self.losses or ("",):
            check_choice(owner, "losses", loss, LOSSES)
        for strength in self.augmentations or ("",):
            check_choice(owner, "augmentations", strength, AUGMENTATIONS)


class DeepSegmentationRung(Rung):
    """Base of the MONAI segmentation rungs; subclasses set the class variables below."""

    tasks = ("segmentation",)
    Params = DeepParams
    cost_weight = 2.0
    resumable = True
    #: The network, as an :mod:`automed.nets` path (``"automed.nets.unet:UNet"``).
    architecture: ClassVar[str]
    #: 2 (slices of 3D volumes, or 2D images) or 3.
    network_dims: ClassVar[int]
    #: Voxels per batch the default batch sizes aim at (larger patches, smaller batches).
    batch_voxels: ClassVar[int]
    default_max_patch: ClassVar[int]

    # -- search space ------------------------------------------------------------------

    def search_space(self, trial: Any) -> dict[str, Any]:
        settings = self._settings
        space = {
            "lr": trial.suggest_float("lr", self.params.lr_min, self.params.lr_max, log=True),
            "width": trial.suggest_categorical("width", settings["widths"]),
            "batch_size": trial.suggest_categorical("batch_size", settings["batch_sizes"]),
            "loss": trial.suggest_categorical("loss", list(self.params.losses)),
            "augmentation": trial.suggest_categorical("augmentation", list(self.params.augmentations)),
        }
        return {**space, **self._architecture.search_space(trial, self.params)}

    def _default_space(self, settings: dict[str, Any]) -> dict[str, Any]:
        """The first trial, and the configuration trained when there is no search."""
        p = self.params
        space = {"lr": float(np.clip(3e-3, p.lr_min, p.lr_max)), "width": settings["widths"][0],
                 "batch_size": settings["batch_sizes"][-1], "loss": p.losses[0],
                 "augmentation": "medium" if "medium" in p.augmentations else p.augmentations[0]}
        return {**space, **self._architecture.default(p)}

    @property
    def _architecture(self) -> Any:
        from automed.nets import architecture

        return architecture(self.architecture)

    def _config(self, space: dict[str, Any], settings: dict[str, Any]) -> Any:
        from automed.deep.training import NetConfig

        hp = {k: v for k, v in space.items() if k not in COMMON_HYPERPARAMETERS}
        divisor = self._architecture.size_divisor(hp)
        # at least two voxels per axis at the deepest level: instance norm fails on a single one
        low = 2 * divisor
        cap = max(low, (self.params.max_patch or self.default_max_patch) // divisor * divisor)
        patch = tuple(max(low, min(cap, math.ceil(s / divisor) * divisor)) for s in settings["patch"])
        return NetConfig(self.architecture, self.network_dims, space["width"], hp, space["loss"], space["lr"],
                         space["batch_size"], space["augmentation"], patch)

    # -- planning ------------------------------------------------------------------------

    def plan(self, context: FitContext) -> RungPlan:
        """Probe the default configuration; shrink it to the memory limit and the allotment, or skip."""
        saved = context.folder / "plan.json"
        if saved.is_file():
            return RungPlan(**json.loads(saved.read_text()))
        fp = context.fingerprint
        if self.network_dims == 3 and fp.dims == 2:
            return RungPlan(None, note="not probed", skip_reason="a 3D network needs 3D images; this dataset is 2D.")
        probe = _Prober(self, context)
        shrunk: list[str] = []
        skip = self._fit_memory(probe, context, shrunk)
        if skip is not None:
            return skip
        measured, val_s, epoch_s = probe.default()
        budget, p = context.budget_s, self.params
        n_evals = len(self._evaluations(context))
        n_eval_cases = sum(len(v) for _, _, v in self._evaluations(context))
        tta_factor = 2 ** (2 if self.network_dims == 2 else 3) if p.tta else 1
        reserve_s = 10.0 + n_eval_cases * val_s * tta_factor * 1.5
        usable = None if budget is None else budget - reserve_s - PROBE_OVERHEAD_S * n_evals
        while usable is not None and usable < p.min_epochs * epoch_s * n_evals and len(probe.settings["widths"]) and \
                probe.settings["widths"][0] > 8:
            old = probe.settings["widths"][0]
            probe.settings["widths"] = [old // 2]
            shrunk.append(f"width {old} -> {old // 2} to fit {p.min_epochs} epochs in {_minutes(budget)}")
            measured, val_s, epoch_s = probe.default()
        settings = probe.settings
        settings.update(epoch_seconds=epoch_s, validation_seconds_per_case=val_s, device=str(probe.device),
                        seconds_per_step=measured.seconds_per_step)
        note = (f"probe on {probe.device}: {measured.seconds_per_step:.3f} s per step of "
                f"{self._default_space(settings)['batch_size']} samples, {val_s:.2f} s per validation image, "
                f"{epoch_s:.1f} s per epoch")
        if usable is None:  # no time limit: fixed epochs, as many as max_epochs allows
            n_trials = p.n_trials if p.n_trials >= 2 else 0
            settings.update(trial_epochs=max(p.max_epochs // 3, p.min_epochs), final_epochs=p.max_epochs)
            trial_s = settings["trial_epochs"] * epoch_s + PROBE_OVERHEAD_S
            final_s = p.max_epochs * epoch_s + PROBE_OVERHEAD_S
        else:
            minimum = p.min_epochs * epoch_s * n_evals
            if usable < minimum:
                need = budget - usable + minimum
                return RungPlan(need, measured.train_memory_bytes, note, shrunk,
                                skip_reason=f"estimated {_minutes(need)} for the shortest training "
                                            f"({p.min_epochs} epochs) > the {_minutes(budget)} allotted.")
            n_trials, trial_s, final_s = self._split_time(usable, epoch_s, n_evals, shrunk)
        settings.update(n_trials=n_trials, trial_seconds=trial_s, final_seconds=final_s)
        seconds = reserve_s + n_trials * trial_s + n_evals * final_s
        plan = RungPlan(seconds, measured.train_memory_bytes, note, shrunk, None, settings)
        context.folder.mkdir(parents=True, exist_ok=True)
        saved.write_text(json.dumps(asdict(plan), indent=2))
        return plan

    def _fit_memory(self, probe: _Prober, context: FitContext, shrunk: list[str]) -> RungPlan | None:
        """Shrink the largest searchable configuration until its training fits the memory limit."""
        limit = context.max_vram_bytes or _cuda_memory_limit(probe.device)
        if limit is None:
            return None
        settings = probe.settings
        largest = {**self._default_space(settings), "width": settings["widths"][-1],
                   "batch_size": settings["batch_sizes"][-1], **self._architecture.largest(self.params)}
        while (need := probe.measure(largest).train_memory_bytes) > limit:
            change = self._shrink_for_memory(settings, largest)
            if change is None:
                return RungPlan(None, need, skip_reason=f"the smallest configuration needs an estimated "
                                f"{need / 2**30:.1f} GiB to train, more than the {limit / 2**30:.1f} GiB limit.",
                                shrunk=shrunk)
            shrunk.append(f"{change} (estimated {need / 2**30:.1f} GiB > {limit / 2**30:.1f} GiB limit)")
        return None

    def _split_time(self, usable: float, epoch_s: float, n_evals: int, shrunk: list[str]) -> tuple[int, float, float]:
        """Trials, seconds per trial and seconds per final training within ``usable`` seconds."""
        p = self.params
        search_s = usable * p.search_fraction
        n_trials = min(p.n_trials, int(search_s // (p.min_epochs * epoch_s + PROBE_OVERHEAD_S)))
        if n_trials < 2:
            if p.n_trials >= 2:
                shrunk.append(f"search dropped ({p.n_trials} trials of {p.min_epochs}+ epochs do not fit "
                              f"{_minutes(search_s)}); the default configuration is trained")
            n_trials, search_s = 0, 0.0
        elif n_trials < p.n_trials:
            shrunk.append(f"trials {p.n_trials} -> {n_trials} to fit {_minutes(search_s)} of search")
        final_s = (usable - search_s) / n_evals
        epochs = int(min(p.max_epochs, (final_s - PROBE_OVERHEAD_S) // epoch_s))
        if epochs < p.max_epochs:
            shrunk.append(f"epochs {p.max_epochs} -> about {epochs} to fit {_minutes(final_s)} of final training")
        return n_trials, (search_s / n_trials if n_trials else 0.0), final_s

    def _shrink_for_memory(self, settings: dict[str, Any], largest: dict[str, Any]) -> str | None:
        """Reduce the largest configuration one step: batch, then patch (3D), then width."""
        batches, widths = settings["batch_sizes"], settings["widths"]
        if len(batches) > 1 or batches[0] > 1:
            old = batches[-1]
            settings["batch_sizes"] = batches[:-1] if len(batches) > 1 else [max(1, old // 2)]
            largest["batch_size"] = settings["batch_sizes"][-1]
            return f"batch {old} -> {largest['batch_size']}"
        patch = settings["patch"]
        if self.network_dims == 3 and max(patch) > 32:
            new = [max(16, int(s * 0.75) // 16 * 16) for s in patch]  # multiples of 16 stay as the message says
            settings["patch"] = new
            return f"patch {patch} -> {new}"
        if len(widths) > 1 or widths[0] > 8:
            old = widths[-1]
            settings["widths"] = widths[:-1] if len(widths) > 1 else [old // 2]
            largest["width"] = settings["widths"][-1]
            return f"width {old} -> {largest['width']}"
        return None

    def _default_batch_sizes(self, patch: list[int]) -> list[int]:
        """The power of two nearest ``batch_voxels / patch voxels`` (2 to 32), and half of it."""
        largest = int(np.clip(2 ** round(math.log2(self.batch_voxels / np.prod(patch))), 2, 32))
        return [largest // 2, largest]

    def _axis(self, fingerprint: Any) -> int | None:
        from automed.deep.volumes import slice_axis

        return slice_axis(fingerprint) if self.network_dims == 2 and fingerprint.dims == 3 else None

    def _patch(self, fingerprint: Any, axis: int | None) -> list[int]:
        """Median image size (the slice plane for 2D on 3D), capped, as nnU-Net plans its patch.

        Larger images are cropped in training and tiled in inference. Each configuration rounds
        the patch up to its network's size divisor (see ``_config``), so a shallower network
        trains on a tighter patch.
        """
        shapes = np.asarray([r["shape"] for r in fingerprint.cases])
        if axis is not None:
            shapes = np.delete(shapes, axis, axis=1)
        cap = self.params.max_patch or self.default_max_patch
        return [int(min(cap, math.ceil(s))) for s in np.median(shapes, axis=0)]

    # -- splits ----------------------------------------------------------------------------

    @staticmethod
    def _evaluations(context: FitContext) -> list[tuple[int, list[str], list[str]]]:
        """(fold, training cases, comparison cases) of every final training."""
        folds = context.folds if context.cv == "full" else context.folds[:1]
        return [(k, list(f["train"]), list(f["val"])) for k, f in enumerate(folds)]

    def _inner(self, train_ids: list[str], context: FitContext) -> tuple[list[str], list[str]]:
        """Inner training and validation cases (grouped) drawn from ``train_ids``."""
        from automed.data.splits import make_folds

        groups = {c.case_id: c.group for c in context.dataset.cases}
        n = max(2, min(len(train_ids), round(1 / self.params.validation_fraction)))
        inner = make_folds(train_ids, [groups[c] for c in train_ids], n, context.random_state)[0]
        cap = self.params.max_validation_cases  # cases over the cap go back to training
        return list(inner["train"]) + list(inner["val"])[cap:], list(inner["val"])[:cap]

    # -- fitting ---------------------------------------------------------------------------

    def fit(self, context: FitContext, plan: RungPlan | None = None) -> RungOutcome:
        from automed.deep.inference import pick_device
        from automed.deep.volumes import load_volumes
        from automed.models.postprocess import apply_postprocessing

        plan = plan or self.plan(context)
        if plan.skip_reason:
            raise RuntimeError(f"{self.name}: planned to be skipped: {plan.skip_reason}")
        self._settings = plan.settings
        fp = context.fingerprint
        device = pick_device()
        evaluations = self._evaluations(context)
        needed = sorted({c for _, train, val in evaluations for c in train + val})
        volumes = load_volumes(context.dataset, fp, needed)
        started = time.monotonic()
        if plan.settings["n_trials"] >= 2:
            space, search = self._search(context, volumes, evaluations[0][1], device)
        else:
            space, search = self._default_space(plan.settings), {
                "n_trials": 0, "n_pruned": 0, "note": "no search: the default configuration",
                "inner_validation_cases": len(self._inner(evaluations[0][1], context)[1])}
        search_seconds = time.monotonic() - started
        config = self._config(space, plan.settings)
        # Search time left over (pruned or fast trials) goes to the final training.
        unused = max(0.0, plan.settings["n_trials"] * plan.settings["trial_seconds"] - search_seconds)
        final_seconds = plan.settings["final_seconds"] + unused / len(evaluations)
        started = time.monotonic()
        trainings, models, inner_preds = [], [], []
        for k, train_ids, _ in evaluations:
            inner_train, inner_val = self._inner(train_ids, context)
            folder = context.folder / "final" / f"fold{k}"
            result, probe = self._train(config, final_seconds, volumes, inner_train, inner_val,
                                        folder, context, device, epochs=plan.settings.get("final_epochs"))
            model = _load_model(config, fp, folder / "best.pt", device)
            models.append(model)
            trainings.append({"fold": k, **_result_dict(result), "est_train_vram_bytes": probe.train_memory_bytes})
            inner_preds += [(self._predict_with([model], config, volumes[c].image, device), volumes[c].label)
                            for c in inner_val]
        final_fit_seconds = time.monotonic() - started
        steps, dice_raw, dice_pp = self._choose_postprocessing(inner_preds, fp.n_classes, context)
        per_case, seconds = evaluate_cases(
            context, evaluations, volumes,
            lambda k, image: apply_postprocessing(self._predict_with([models[k]], config, image, device), steps))
        self._save(context.folder, config, steps, fp, len(models))
        from automed.nets import count_parameters

        est = max(t["est_train_vram_bytes"] for t in trainings)
        return RungOutcome(
            per_case=per_case, postprocessing=steps,
            details={"config": _plain(config), "search": search, "trainings": trainings,
                     "slice_axis": plan.settings["axis"], "comparison_cases": "every fold's validation cases"
                     if context.cv == "full" else "validation cases of fold 0",
                     "dice_inner_validation_before_postprocessing": dice_raw,
                     "dice_inner_validation_after_postprocessing": dice_pp, "tta": self.params.tta},
            n_params=count_parameters(models[0]), predict_seconds_per_case=seconds,
            cost={"search_seconds": search_seconds, "final_fit_seconds": final_fit_seconds, "device": str(device),
                  "n_trials": search["n_trials"], "n_trials_pruned": search["n_pruned"],
                  "est_train_vram_bytes": est},
        )

    def _train(self, config: Any, seconds: float, volumes: dict[str, Any], train_ids: list[str],
               val_ids: list[str], folder: Path, context: FitContext, device: Any,
               on_epoch: Any = None, epochs: int | None = None) -> tuple[Any, Any]:
        """Probe ``config`` to size its schedule to ``seconds`` (or to fixed ``epochs``), then train.

        The schedule is kept in ``schedule.json`` so a resumed training keeps it.
        """
        from automed.deep.probe import probe
        from automed.deep.training import Schedule, train
        from automed.deep.volumes import SampleSource

        fp, p = context.fingerprint, self.params
        source = SampleSource({c: volumes[c] for c in train_ids}, self._settings["axis"])
        measured = probe(config, source, fp.n_channels, fp.n_classes, device, context.include_background,
                         seed=context.random_state)
        folder.mkdir(parents=True, exist_ok=True)
        saved = folder / "schedule.json"
        if saved.is_file():
            schedule = Schedule(**json.loads(saved.read_text()))
        else:
            epoch_s = (p.iterations * measured.seconds_per_step
                       + len(val_ids) * self._settings["validation_seconds_per_case"])
            if epochs is None:
                epochs = int(np.clip((seconds - PROBE_OVERHEAD_S) // max(epoch_s, 1e-6), p.min_epochs, p.max_epochs))
            schedule = Schedule(epochs, p.iterations, max(p.min_epochs, math.ceil(p.patience_fraction * epochs)))
            saved.write_text(json.dumps(asdict(schedule)))
        # With a time allotment, a hard stop in case the probe was optimistic; fixed epochs run to the end.
        deadline = None if epochs is not None else time.monotonic() + seconds * 1.25
        result = train(config, schedule, source, [volumes[c] for c in val_ids], self._settings["axis"],
                       fp.n_classes, fp.n_channels, folder, context.random_state, device,
                       context.include_background, deadline, on_epoch)
        return result, measured

    def _search(self, context: FitContext, volumes: dict[str, Any], train_ids: list[str],
                device: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """Optuna study on the inner split; interrupted trials resume from their checkpoints."""
        import optuna
        from optuna.trial import TrialState

        settings = self._settings
        inner_train, inner_val = self._inner(train_ids, context)
        study = open_study(self.name, context.optuna_storage, context.random_state, self._default_space(settings),
                           optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=self.params.min_epochs),
                           continue_interrupted=True)
        trials_dir = context.folder / "trials"

        def objective(trial: optuna.Trial) -> float:
            space = self.search_space(trial)
            number = trial.user_attrs.get("continues", trial.number)
            folder = trials_dir / str(number)

            def report(epoch: int, value: float) -> None:
                trial.report(value, epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned()

            result, _ = self._train(self._config(space, settings), settings["trial_seconds"], volumes, inner_train,
                                    inner_val, folder, context, device, report, settings.get("trial_epochs"))
            trial.set_user_attr("epochs", result.epochs)
            shutil.rmtree(folder, ignore_errors=True)
            return result.best_value

        def finished(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            if trial.state == TrialState.PRUNED:
                shutil.rmtree(trials_dir / str(trial.user_attrs.get("continues", trial.number)), ignore_errors=True)

        optimize_within(study, objective, settings["n_trials"], None, callbacks=[finished])
        done = finished_trials(study)
        best = study.best_trial
        space = {**self._default_space(settings), **best.params}
        info = {"n_trials": len(done), "n_pruned": sum(t.state == TrialState.PRUNED for t in done),
                "best_value": best.value, "best_params": space, "inner_train_cases": len(inner_train),
                "inner_validation_cases": len(inner_val),
                "objective": "best per-epoch mean Dice on an inner validation split of fold 0's training cases"}
        log.info("%s: search done, %d trials (%d pruned), best Dice %.4f with %s", self.name, info["n_trials"],
                 info["n_pruned"], best.value, space)
        return space, info

    def _mean_proba(self, models: list[Any], config: Any, image: np.ndarray, device: Any) -> np.ndarray:
        """Softmax ``(n_classes, *spatial)`` of ``image`` averaged over ``models`` (and mirrors with TTA)."""
        from automed.deep.inference import predict_proba

        return np.mean([predict_proba(m, image, config.patch, self._settings["axis"], device, self.params.tta)
                        for m in models], axis=0)

    def _predict_with(self, models: list[Any], config: Any, image: np.ndarray, device: Any) -> np.ndarray:
        """Class map of ``image``: the argmax of :meth:`_mean_proba`."""
        return self._mean_proba(models, config, image, device).argmax(axis=0).astype(np.uint8)

    def _choose_postprocessing(self, preds: list[tuple[np.ndarray, np.ndarray]], n_classes: int,
                               context: FitContext) -> tuple[list[dict[str, Any]], float | None, float | None]:
        """Connected-component steps kept only where they raise Dice on the inner validation cases."""
        from automed.models.postprocess import choose_postprocessing

        if not preds:
            return [], None, None
        first = 0 if context.include_background else 1
        return choose_postprocessing([p for p, _ in preds], [t for _, t in preds], n_classes, first_class=first)

    def _save(self, folder: Path, config: Any, steps: list[dict[str, Any]], fingerprint: Any, n_models: int) -> None:
        """``model.json`` plus one ``model_fold<k>.pt`` state dict per final training; checkpoints removed."""
        for k in range(n_models):
            shutil.copyfile(folder / "final" / f"fold{k}" / "best.pt", folder / f"model_fold{k}.pt")
        for checkpoints in ("final", "trials"):
            shutil.rmtree(folder / checkpoints, ignore_errors=True)
        write_record(folder / "model.json", self.params, config=_plain(config), settings=self._settings,
                     postprocessing=steps, n_classes=fingerprint.n_classes, n_channels=fingerprint.n_channels,
                     n_models=n_models)

    # -- prediction ----------------------------------------------------------------------

    @classmethod
    def load(cls, folder: Path) -> DeepSegmentationRung:
        """The fitted rung in ``folder``; weights are read with ``torch.load(weights_only=True)``."""
        from automed.deep.inference import pick_device
        from automed.deep.training import config_from_dict

        params, meta = read_record(folder / "model.json", DeepParams,
                                   ("config", "settings", "postprocessing", "n_classes", "n_channels", "n_models"))
        rung = cls(params)
        rung._settings = meta["settings"]
        rung.config_ = config_from_dict(meta["config"])
        rung.postprocessing_ = meta["postprocessing"]
        rung.device_ = pick_device()
        fp = _Shape(meta["n_channels"], meta["n_classes"])
        rung.models_ = [_load_model(rung.config_, fp, folder / f"model_fold{k}.pt", rung.device_)
                        for k in range(meta["n_models"])]
        return rung

    def predict_proba(self, image: np.ndarray, fold: int | None = None) -> np.ndarray:
        """Softmax ``(n_classes, *spatial)`` of a normalised image: every fold's model averaged, or one fold's."""
        models = self.models_ if fold is None else [self.models_[fold]]
        return self._mean_proba(models, self.config_, image, self.device_)

    def predict(self, image: np.ndarray) -> np.ndarray:
        from automed.models.postprocess import apply_postprocessing

        pred = self.predict_proba(image).argmax(axis=0).astype(np.uint8)
        return apply_postprocessing(pred, self.postprocessing_)


def evaluate_cases(context: FitContext, evaluations: list, volumes: dict[str, Any],
                   predict: Callable[[int, np.ndarray], np.ndarray]) -> tuple[list[dict], float]:
    """Score ``predict(fold, image)`` (a class map) on the comparison cases of ``evaluations``.

    The masks go to ``oof/`` in the label's format. Returns the per-case records of
    :class:`RungOutcome` and the mean prediction seconds per case.
    """
    from automed.data.io import image_suffix, write_image
    from automed.data.normalize import unmap_labels
    from automed.metrics import segmentation_scores

    fp = context.fingerprint
    cases = {c.case_id: c for c in context.dataset.cases}
    out = context.folder / "oof"
    out.mkdir(parents=True, exist_ok=True)
    per_case, seconds = [], []
    for k, _, val_ids in evaluations:
        for case_id in val_ids:
            volume = volumes[case_id]
            started = time.monotonic()
            pred = predict(k, volume.image)
            seconds.append(time.monotonic() - started)
            scores = segmentation_scores(pred, volume.label, fp.n_classes, volume.spacing)
            per_case.append({"case_id": case_id, "fold": k, "scores": {str(c): s for c, s in scores.items()}})
            label_path = cases[case_id].label_path
            suffix = image_suffix(label_path) if label_path.is_file() else ".nii.gz"
            write_image(unmap_labels(pred, fp.label_mapping), volume.geometry, out / f"{case_id}{suffix}")
    return per_case, float(np.mean(seconds))


class _Prober:
    """Probe configurations of a rung on a few training cases of fold 0's inner split."""

    def __init__(self, rung: DeepSegmentationRung, context: FitContext) -> None:
        from automed.deep.inference import pick_device
        from automed.deep.volumes import SampleSource, load_volumes

        self.rung, self.context = rung, context
        fp, p = context.fingerprint, rung.params
        axis = rung._axis(fp)
        patch = rung._patch(fp, axis)
        self.settings = {"axis": axis, "patch": patch, "widths": sorted(p.widths),
                         "batch_sizes": sorted(p.batch_sizes or rung._default_batch_sizes(patch))}
        _, train_ids, _ = rung._evaluations(context)[0]
        inner_train, self.inner_val = rung._inner(train_ids, context)
        self.volumes = load_volumes(context.dataset, fp, inner_train[:8] + self.inner_val[:1])
        self.source = SampleSource({k: v for k, v in self.volumes.items() if k in inner_train}, axis)
        self.device = pick_device()

    def measure(self, space: dict[str, Any]) -> Any:
        from automed.deep.probe import probe

        fp = self.context.fingerprint
        return probe(self.rung._config(space, self.settings), self.source, fp.n_channels, fp.n_classes, self.device,
                     self.context.include_background, seed=self.context.random_state)

    def default(self) -> tuple[Any, float, float]:
        """Probe of the default configuration, seconds per validation image and per epoch."""
        from automed.deep.inference import predict_proba

        space = self.rung._default_space(self.settings)
        measured = self.measure(space)
        config = self.rung._config(space, self.settings)
        started = time.perf_counter()
        predict_proba(_new_model(config, self.context.fingerprint, self.device),
                      self.volumes[self.inner_val[0]].image, config.patch, self.settings["axis"], self.device)
        val_s = time.perf_counter() - started
        epoch_s = self.rung.params.iterations * measured.seconds_per_step + len(self.inner_val) * val_s
        return measured, val_s, epoch_s


@dataclass(frozen=True)
class _Shape:
    n_channels: int
    n_classes: int


def _load_model(config: Any, fingerprint: Any, path: Path, device: Any) -> Any:
    import torch

    model = _new_model(config, fingerprint, device)
    model.load_state_dict(torch.load(path, map_location=device, weights_only=True)["model"])
    return model.eval()


def _new_model(config: Any, fingerprint: Any, device: Any) -> Any:
    from automed.nets import build_network

    return build_network(config, fingerprint.n_channels, fingerprint.n_classes).to(device)


def _cuda_memory_limit(device: Any) -> int | None:
    """90% of the GPU's memory on CUDA; no limit on CPU."""
    import torch

    return int(torch.cuda.get_device_properties(device).total_memory * 0.9) if device.type == "cuda" else None


def _result_dict(result: Any) -> dict[str, Any]:
    return {"epochs": result.epochs, "best_epoch": result.best_epoch, "best_inner_dice": result.best_value,
            "seconds": result.seconds, "stop_reason": result.stop_reason, "batch_size": result.batch_size,
            "events": result.events, "history": result.history}


def _plain(obj: Any) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(obj).items()}


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"
