"""What the deep segmentation rungs share: Optuna search, final training, evaluation, prediction.

A deep rung (``unet2d``, ``unet3d``, ``unetpp``, ``segresnet``, ``dynunet``) is a registry entry
naming its architecture and defaults; its parameters are in :mod:`automed.rungs.segmentation.deep_params`,
the probe it plans with in :mod:`automed.rungs.segmentation.deep_planning` and its saved networks' files in
:mod:`automed.rungs.segmentation.deep_models`.
Fitting, in order:

1. **plan** (before the rung starts): timed probe steps estimate seconds per epoch and
   training memory; the configuration is shrunk (batch, patch, width) to fit the memory
   limit and the number of trials and epochs to fit the time allotted, or the rung is
   skipped with the reason. The plan is saved, so a resumed fit follows it unchanged;
2. **search**: an Optuna TPE study (SQLite, one per rung) on an inner split of fold 0's
   training cases, pruned on per-epoch validation Dice. The first trial is a sound
   default. Interrupted trials continue from their last checkpoint;
3. **final training** of the best configuration on the same inner split, with early
   stopping on the inner validation cases (one per fold with ``cv: full``); with
   ``members`` > 1, that many trainings per fold, each holding out another inner split,
   averaged;
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
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from automed._jsonio import write_json
from automed.deep.probe import cuda_memory_limit
from automed.deep.throughput import THROUGHPUT_FIELDS, training_throughput
from automed.models.search import SearchObjective, finished_trials, open_study, optimize_within, workers_of
from automed.rungs.base import FitContext, Rung, RungOutcome, RungPlan
from automed.rungs.segmentation.deep_evaluation import evaluate_cases
from automed.rungs.segmentation.deep_models import NetworkShape, load_model, plain_config, training_key
from automed.rungs.segmentation.deep_params import DeepParams
from automed.rungs.segmentation.deep_planning import PROBE_OVERHEAD_S, Prober
from automed.rungs.records import read_record, write_record
from automed.rungs.time_plan import final_seconds, minutes, split_time

__all__ = ["DeepSegmentationRung"]

log = logging.getLogger("automed")
COMMON_HYPERPARAMETERS = ("lr", "width", "batch_size", "loss", "augmentation")  # the rest belong to the architecture


class DeepSegmentationRung(Rung):
    """The MONAI segmentation rungs; a registry entry sets the class variables below."""

    tasks = ("segmentation",)
    export_as = "segmentation_network"
    Params = DeepParams
    cost_weight = 2.0
    resumable = True
    trains_networks = True
    #: The network, as an :mod:`automed.nets` path (``"automed.nets.unet:UNet"``).
    architecture: ClassVar[str]
    #: 2 (slices of 3D volumes, or 2D images) or 3.
    network_dims: ClassVar[int]
    #: Voxels per batch the default batch sizes aim at (larger patches, smaller batches).
    batch_voxels: ClassVar[int]
    default_max_patch: ClassVar[int]

    # -- search space ------------------------------------------------------------------

    @classmethod
    def applies_to(cls, fingerprint: Any) -> bool:
        """A 3D network needs 3D images; a 2D one takes 2D images or the slices of volumes."""
        return not (cls.network_dims == 3 and fingerprint.dims == 2)

    @classmethod
    def climb_family(cls) -> str:
        """The 2D networks, or the 3D ones."""
        return f"{cls.network_dims}D networks"

    @classmethod
    def chosen(cls, details: dict[str, Any]) -> dict[str, Any]:
        """The configuration, and the epochs each final training (one per fold or member) was scheduled for."""
        config, trainings = details.get("config"), details.get("trainings")
        if not (isinstance(config, dict) and trainings):
            return {}
        return {"replay_space": {**{k: config[k] for k in COMMON_HYPERPARAMETERS if k in config},
                                 **config.get("hp", {})},
                "replay_epochs": {t.get("key", f"fold{t['fold']}"): t.get("planned_epochs") or t["epochs"]
                                  for t in trainings},
                "n_trials": 0}

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
                         space["batch_size"], space["augmentation"], patch,
                         cpu_bfloat16=settings.get("cpu_bfloat16", self.params.cpu_bfloat16 is True))


    # -- planning ------------------------------------------------------------------------


    def plan(self, context: FitContext) -> RungPlan:
        """Probe the default configuration; shrink it to the memory limit and the allotment, or skip."""
        fp = context.fingerprint
        if not self.applies_to(fp):
            return RungPlan(None, note="not probed", skip_reason="a 3D network needs 3D images; this dataset is 2D.")
        probe = Prober(self, context)
        shrunk: list[str] = []
        skip = self._fit_memory(probe, context, shrunk)
        if skip is not None:
            return skip
        precision = probe.choose_precision()
        measured, val_s, epoch_s = probe.default()
        budget, p = context.budget_s, self.params
        n_trainings = len(self._evaluations(context)) * p.members  # final trainings
        n_eval_cases = sum(len(v) for _, _, v in self._evaluations(context))
        tta_factor = 2 ** (2 if self.network_dims == 2 else 3) if p.tta else 1
        reserve_s = 10.0 + n_eval_cases * val_s * tta_factor * p.members * 1.5
        usable = None if budget is None else budget - reserve_s - PROBE_OVERHEAD_S * n_trainings
        while usable is not None and usable < p.min_epochs * epoch_s * n_trainings and len(probe.settings["widths"]) and \
                probe.settings["widths"][0] > 8:
            old = probe.settings["widths"][0]
            probe.settings["widths"] = [old // 2]
            shrunk.append(f"width {old} -> {old // 2} to fit {p.min_epochs} epochs in {minutes(budget)}")
            measured, val_s, epoch_s = probe.default()
        settings = probe.settings
        settings.update(epoch_seconds=epoch_s, validation_seconds_per_case=val_s, device=str(probe.device),
                        seconds_per_step=measured.seconds_per_step)
        note = (f"probe on {probe.device}: {measured.seconds_per_step:.3f} s per step of "
                f"{self._default_space(settings)['batch_size']} samples, {val_s:.2f} s per validation image, "
                f"{epoch_s:.1f} s per epoch" + (f"; {precision}" if precision else ""))
        if usable is None:  # no time limit: fixed epochs, as many as max_epochs allows
            n_trials = p.n_trials if p.n_trials >= 2 else 0
            settings.update(trial_epochs=max(p.max_epochs // 3, p.min_epochs), final_epochs=p.max_epochs)
            trial_s = settings["trial_epochs"] * epoch_s + PROBE_OVERHEAD_S
            final_s = p.max_epochs * epoch_s + PROBE_OVERHEAD_S
        else:
            minimum = p.min_epochs * epoch_s * n_trainings
            if usable < minimum:
                need = budget - usable + minimum
                return RungPlan(need, measured.train_memory_bytes, note, shrunk,
                                skip_reason=f"estimated {minutes(need)} for the shortest training "
                                            f"({p.min_epochs} epochs) > the {minutes(budget)} allotted.")
            n_trials, trial_s, final_s = split_time(usable, epoch_s, p, PROBE_OVERHEAD_S, shrunk, n_trainings)
        settings.update(n_trials=n_trials, trial_seconds=trial_s, final_seconds=final_s)
        seconds = reserve_s + n_trials * trial_s + n_trainings * final_s
        plan = RungPlan(seconds, measured.train_memory_bytes, note, shrunk, None, settings)
        return plan

    def _fit_memory(self, probe: Prober, context: FitContext, shrunk: list[str]) -> RungPlan | None:
        """Shrink the largest searchable configuration until its training fits the memory limit."""
        limit = context.max_vram_bytes or cuda_memory_limit(probe.device)
        if limit is None:
            return None
        settings = probe.settings
        largest = {**self._default_space(settings), "width": settings["widths"][-1],
                   "batch_size": settings["batch_sizes"][-1], **self._architecture.largest(self.params)}
        while (need := probe.memory_needed(largest)) is None or need > limit:
            change = self._shrink_for_memory(settings, largest)
            if change is None:
                return RungPlan(None, need, shrunk=shrunk, skip_reason=(
                    "the smallest configuration ran out of GPU memory in a probe training step." if need is None else
                    f"the smallest configuration needs an estimated {need / 2**30:.1f} GiB to train, more than the "
                    f"{limit / 2**30:.1f} GiB limit."))
            why = ("out of GPU memory in a probe step" if need is None else
                   f"estimated {need / 2**30:.1f} GiB > {limit / 2**30:.1f} GiB limit")
            shrunk.append(f"{change} ({why})")
        return None

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

    def _inner(self, train_ids: list[str], context: FitContext, member: int = 0) -> tuple[list[str], list[str]]:
        """Inner training and validation cases (grouped) drawn from ``train_ids``; each ``member``
        holds out another inner fold."""
        from automed.data.splits import inner_split

        groups = {c.case_id: c.group for c in context.dataset.cases}
        inner = inner_split(train_ids, [groups[c] for c in train_ids], context.random_state,
                            self.params.inner_folds, fold=member)
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
        volumes = load_volumes(context.dataset, fp, needed, context.volume_cache)
        started = time.monotonic()
        if "replay_space" in plan.settings:  # automed fit --replay: the configuration another run chose
            space, search = dict(plan.settings["replay_space"]), {
                "n_trials": 0, "n_pruned": 0, "note": "replayed: the configuration of the run it replays",
                "inner_validation_cases": len(self._inner(evaluations[0][1], context)[1])}
        elif plan.settings["n_trials"] >= 2:
            space, search = self._search(context, volumes, evaluations[0][1], device)
        else:
            space, search = self._default_space(plan.settings), {
                "n_trials": 0, "n_pruned": 0, "note": "no search: the default configuration",
                "inner_validation_cases": len(self._inner(evaluations[0][1], context)[1])}
        search_seconds = time.monotonic() - started
        config = self._config(space, plan.settings)
        # Search time left over (pruned or fast trials) goes to the final training; an overrun comes out of it.
        members = self.params.members
        final_s = final_seconds(plan.settings, search_seconds, len(evaluations) * members)
        started = time.monotonic()
        trainings, fold_models, inner_preds = [], [], []
        for k, train_ids, _ in evaluations:
            fold_models.append([])
            for m in range(members):
                inner_train, inner_val = self._inner(train_ids, context, m)
                key = training_key(k, m)
                folder = context.folder / "final" / key
                result, probe = self._train(config, final_s, volumes, inner_train, inner_val, folder, context, device,
                                            epochs=(plan.settings.get("replay_epochs") or {}).get(
                                                key, plan.settings.get("final_epochs")), seed=context.random_state + m,
                                            early_stopping=False)
                model = load_model(config, fp, folder / "best.pt", device)
                fold_models[-1].append(model)
                trainings.append({"fold": k, "member": m, "key": key, **_result_dict(result),
                                  "est_train_vram_bytes": probe.train_memory_bytes, "flops_per_voxel": probe.flops_per_voxel})
                # each member's own held-out cases choose the post-processing: none of them trained on them
                inner_preds += [(self._predict_with([model], config, volumes[c].image, device), volumes[c].label)
                                for c in inner_val]
        final_fit_seconds = time.monotonic() - started
        steps, dice_raw, dice_pp = self._choose_postprocessing(inner_preds, fp.n_classes, context)
        per_case, seconds = evaluate_cases(
            context, evaluations, volumes,
            lambda k, image: apply_postprocessing(self._predict_with(fold_models[k], config, image, device), steps))
        self._save(context.folder, config, steps, fp, [training_key(k, m) for k, _, _ in evaluations
                                                       for m in range(members)])
        from automed.nets import count_parameters

        est = max(t["est_train_vram_bytes"] for t in trainings)
        return RungOutcome(
            per_case=per_case, postprocessing=steps,
            details={"config": plain_config(config), "search": search, "trainings": trainings,
                     "slice_axis": plan.settings["axis"], "comparison_cases": "every fold's validation cases"
                     if context.cv == "full" else "validation cases of fold 0",
                     "dice_inner_validation_before_postprocessing": dice_raw,
                     "dice_inner_validation_after_postprocessing": dice_pp, "tta": self.params.tta,
                     "throughput": training_throughput(trainings, trainings[0]["flops_per_voxel"],
                                                       context.compute_peak,
                                                       bfloat16=config.cpu_bfloat16 and device.type == "cpu")},
            n_params=count_parameters(fold_models[0][0]), predict_seconds_per_case=seconds,
            cost={"search_seconds": search_seconds, "final_fit_seconds": final_fit_seconds, "device": str(device),
                  "n_trials": search["n_trials"], "n_trials_pruned": search["n_pruned"],
                  "est_train_vram_bytes": est},
        )

    def _train(self, config: Any, seconds: float, volumes: dict[str, Any], train_ids: list[str],
               val_ids: list[str], folder: Path, context: FitContext, device: Any,
               on_epoch: Any = None, epochs: int | None = None, seed: int | None = None,
               early_stopping: bool = True) -> tuple[Any, Any]:
        """Probe ``config`` to size its schedule to ``seconds`` (or to fixed ``epochs``), then train
        (seeded by ``seed``, by default the run's).

        Without ``early_stopping`` a timed training runs its poly decay to the end, as nnU-Net does;
        its best inner-validation epoch is still the one kept. The schedule is kept in
        ``schedule.json`` so a resumed training keeps it.
        """
        from automed.deep.probe import probe
        from automed.deep.training import Schedule, train
        from automed.deep.volumes import SampleSource

        began = time.monotonic()
        fp, p = context.fingerprint, self.params
        seed = context.random_state if seed is None else seed
        source = SampleSource({c: volumes[c] for c in train_ids}, self._settings["axis"])
        measured = probe(config, source, fp.n_channels, fp.n_classes, device, context.include_background, seed=seed)
        folder.mkdir(parents=True, exist_ok=True)
        saved = folder / "schedule.json"
        timed = epochs is None
        if saved.is_file():
            schedule = Schedule(**json.loads(saved.read_text()))
        else:
            epoch_s = (p.iterations * measured.seconds_per_step
                       + len(val_ids) * self._settings["validation_seconds_per_case"])
            if epochs is None:
                epochs = int(np.clip((seconds - PROBE_OVERHEAD_S) // max(epoch_s, 1e-6), p.min_epochs, p.max_epochs))
            patience = max(p.min_epochs, math.ceil(p.patience_fraction * epochs))
            schedule = Schedule(epochs, p.iterations, patience if early_stopping or not timed else None)
            write_json(saved, asdict(schedule))
        # With a time allotment the epochs are re-planned from the measured epoch time, with a hard stop
        # in case the steps slow down later; fixed epochs run to the end.
        deadline = began + seconds * 1.25 if timed else None
        result = train(config, schedule, source, [volumes[c] for c in val_ids], self._settings["axis"],
                       fp.n_classes, fp.n_channels, folder, seed, device,
                       context.include_background, deadline, on_epoch,
                       fit_seconds=seconds - (time.monotonic() - began) if timed else None, epoch_cap=p.max_epochs)
        return result, measured

    def shared_search(self, context: FitContext, plan: RungPlan) -> SearchObjective | None:
        """The search's objective for an ``automed worker`` joining it: the fit's inner split and settings."""
        from automed.deep.inference import pick_device
        from automed.deep.volumes import load_volumes

        if plan.skip_reason or "replay_space" in plan.settings or plan.settings.get("n_trials", 0) < 2:
            return None
        self._settings = plan.settings
        train_ids = self._evaluations(context)[0][1]
        volumes = load_volumes(context.dataset, context.fingerprint, train_ids, context.volume_cache)
        return self._search_objective(context, volumes, train_ids, pick_device())

    def _search_objective(self, context: FitContext, volumes: dict[str, Any], train_ids: list[str],
                          device: Any) -> SearchObjective:
        """Train a trial's configuration on the inner split, pruned on its per-epoch Dice; an interrupted
        trial continues from its checkpoint in ``trials/<number>``."""
        import optuna
        from optuna.trial import TrialState

        settings = self._settings
        inner_train, inner_val = self._inner(train_ids, context)
        trials_dir = context.folder / "trials"

        def objective(trial: optuna.Trial) -> float:
            space = self.search_space(trial)
            folder = trials_dir / str(trial.user_attrs.get("continues", trial.number))

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

        pruner = optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=self.params.min_epochs)
        return SearchObjective(objective, pruner, (finished,))

    def _search(self, context: FitContext, volumes: dict[str, Any], train_ids: list[str],
                device: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """Optuna study on the inner split (shared with any ``automed worker`` that joins it)."""
        from optuna.trial import TrialState

        settings = self._settings
        inner_train, inner_val = self._inner(train_ids, context)
        search = self._search_objective(context, volumes, train_ids, device)
        study = open_study(self.name, context.optuna_storage, context.random_state, self._default_space(settings),
                           search.pruner, about={
                               "rung": self.name, "task": "segmentation", "metric": "dice",
                               "measured_on": "an inner validation split of the training cases, per epoch"})
        optimize_within(study, search, settings["n_trials"], None)
        done = finished_trials(study)
        best = study.best_trial
        space = {**self._default_space(settings), **best.params}
        info = {"n_trials": len(done), "n_pruned": sum(t.state == TrialState.PRUNED for t in done),
                "best_value": best.value, "best_params": space, "inner_train_cases": len(inner_train),
                "inner_validation_cases": len(inner_val), "workers": workers_of(done),
                "objective": "best per-epoch mean Dice on an inner validation split of fold 0's training cases"}
        log.info("%s: search done, %d trials (%d pruned) by %d process(es), best Dice %.4f with %s", self.name,
                 info["n_trials"], info["n_pruned"], len(info["workers"]), best.value, space)
        return space, info

    def _choose_postprocessing(self, preds: list[tuple[np.ndarray, np.ndarray]], n_classes: int,
                               context: FitContext) -> tuple[list[dict[str, Any]], float | None, float | None]:
        """Connected-component steps kept only where they raise Dice on the inner validation cases."""
        from automed.models.postprocess import choose_postprocessing

        if not preds:
            return [], None, None
        first = 0 if context.include_background else 1
        return choose_postprocessing([p for p, _ in preds], [t for _, t in preds], n_classes, first_class=first)

    # -- saved models and prediction ------------------------------------------------------

    def _mean_proba(self, models: list[Any], config: Any, image: np.ndarray, device: Any) -> np.ndarray:
        """Softmax ``(n_classes, *spatial)`` of ``image`` averaged over ``models`` (and mirrors with TTA)."""
        from automed.deep.inference import predict_proba

        total = None
        for model in models:  # summed in place: each is n_classes x the image's size
            proba = predict_proba(model, image, config.patch, self._settings["axis"], device, self.params.tta,
                                  bfloat16=config.cpu_bfloat16)
            total = proba if total is None else np.add(total, proba, out=total)
        total /= len(models)
        return total

    def _predict_with(self, models: list[Any], config: Any, image: np.ndarray, device: Any) -> np.ndarray:
        """Class map of ``image``: the argmax of :meth:`_mean_proba`."""
        return self._mean_proba(models, config, image, device).argmax(axis=0).astype(np.uint8)

    def _save(self, folder: Path, config: Any, steps: list[dict[str, Any]], fingerprint: Any, keys: list[str]) -> None:
        """``model.json`` plus one ``model_<key>.pt`` state dict per final training; checkpoints removed."""
        for key in keys:
            shutil.copyfile(folder / "final" / key / "best.pt", folder / f"model_{key}.pt")
        for checkpoints in ("final", "trials"):
            shutil.rmtree(folder / checkpoints, ignore_errors=True)
        write_record(folder / "model.json", self.params, config=plain_config(config), settings=self._settings,
                     postprocessing=steps, n_classes=fingerprint.n_classes, n_channels=fingerprint.n_channels,
                     n_models=len(keys), model_keys=keys)

    # -- prediction ----------------------------------------------------------------------

    @classmethod
    def load(cls, folder: Path) -> Any:
        """The fitted rung in ``folder``; weights are read with ``torch.load(weights_only=True)``."""
        from automed.deep.inference import pick_device
        from automed.deep.training import config_from_dict

        params, meta = read_record(folder / "model.json", DeepParams,
                                   ("config", "settings", "postprocessing", "n_classes", "n_channels", "n_models"))
        rung = cls(params)
        rung._settings = meta["settings"]
        rung.config_ = config_from_dict(meta["config"])
        rung.postprocessing_ = meta["postprocessing"]
        rung.n_channels_ = meta["n_channels"]
        rung.device_ = pick_device()
        fp = NetworkShape(meta["n_channels"], meta["n_classes"])
        keys = meta.get("model_keys") or [training_key(k, 0) for k in range(meta["n_models"])]  # older runs: one per fold
        rung.models_ = [load_model(rung.config_, fp, folder / f"model_{key}.pt", rung.device_) for key in keys]
        return rung

    def predict_proba(self, image: np.ndarray, fold: int | None = None) -> np.ndarray:
        """Softmax ``(n_classes, *spatial)`` of a normalised image: every model averaged, or one fold's members."""
        members = self.params.members
        models = self.models_ if fold is None else self.models_[fold * members:(fold + 1) * members]
        return self._mean_proba(models, self.config_, image, self.device_)

    def predict(self, image: np.ndarray) -> np.ndarray:
        """Class map of a normalised image, post-processed as chosen in the fit."""
        return self.class_map(self.predict_proba(image))

    def class_map(self, proba: np.ndarray) -> np.ndarray:
        """The post-processed argmax of :meth:`predict_proba`'s probabilities."""
        from automed.models.postprocess import apply_postprocessing

        return apply_postprocessing(proba.argmax(axis=0).astype(np.uint8), self.postprocessing_)

    def held_out_folds(self) -> int:
        """How many folds' models the rung kept: ``predict_proba(image, fold=k)`` for ``k`` below it predicts with
        models that did not train on fold ``k``'s validation cases."""
        return len(self.models_) // max(self.params.members, 1)


def _result_dict(result: Any) -> dict[str, Any]:
    return {"epochs": result.epochs, "planned_epochs": result.max_epochs, "best_epoch": result.best_epoch, "best_inner_dice": result.best_value,
            "seconds": result.seconds, "stop_reason": result.stop_reason, "batch_size": result.state["batch_size"],
            "events": result.state["events"], "history": result.history,
            "train_loss": result.train_loss, **{k: result.state[k] for k in THROUGHPUT_FIELDS}}
