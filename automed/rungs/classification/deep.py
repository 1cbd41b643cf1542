"""What the deep classification rungs share: Optuna search, final training, test scores, prediction.

Their parameters are in :mod:`automed.rungs.classification.deep_params`, their planning in
:mod:`automed.rungs.classification.deep_planning`.

Fitting, in order:

1. **plan**: a few timed training steps of the default configuration give seconds per
   epoch; trials and epochs are sized to the time allotted (or the rung is skipped with
   the reason). The plan is saved, so a resumed fit follows it;
2. **search**: an Optuna TPE study (SQLite, one per rung) over learning rate, width, depth,
   loss (cross-entropy, class-weighted, focal, hard example mining), sampling (uniform or
   class-balanced), augmentation and batch size; trials train on the training split and
   are pruned on validation AUC. Interrupted trials continue from their checkpoints;
3. **final training** of the best configuration with early stopping on validation AUC,
   repeated with other seeds while the time allows (``n_models``); the rung predicts with
   the mean of their probabilities (a deep ensemble);
4. **test**: AUC, accuracy and balanced accuracy with bootstrap CIs on the held-out test
   cases, the binary decision threshold chosen on the validation cases.

The training split is the official ``train`` split when there is one (validation: the
official ``val``), else fold 0 of the development cases. The test cases never reach tuning.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from automed._jsonio import write_json
from automed.deep.throughput import THROUGHPUT_FIELDS, training_throughput
from automed.metrics import TEST_SCORES, choose_threshold, classification_summary, decide_classes
from automed.models.search import SearchObjective, finished_trials, open_study, optimize_within, workers_of
from automed.rungs.base import FitContext, Rung, RungOutcome, RungPlan, case_probabilities
from automed.rungs.classification.deep_params import DeepClassifierParams, loss_choices
from automed.rungs.classification.deep_planning import PROBE_OVERHEAD_S, probe_training
from automed.rungs.records import read_record, write_record
from automed.rungs.time_plan import final_seconds, split_time

__all__ = ["DeepClassifierRung"]

log = logging.getLogger("automed")
#: Search-space keys every classifier training has; the others are the architecture's ``hp``.
_TRAINING_KEYS = ("lr", "batch_size", "loss", "sampling", "augmentation", "mode")


class DeepClassifierRung(Rung):
    """The torch classification rungs; the registry sets ``architecture``."""

    tasks = ("classification",)
    export_as = "classification_network"
    Params = DeepClassifierParams
    cost_weight = 2.0
    resumable = True
    trains_networks = True
    #: ``"module:Class"`` of the network's :class:`~automed.nets.ClassifierArchitecture` (set by the registry).
    architecture: ClassVar[str]

    @classmethod
    def climb_family(cls) -> str:
        """The networks trained on the user's images alone (``cnn``, and ``ssl`` which pretrains it on them):
        their failing to gain says little of ImageNet transfer."""
        return "networks trained from scratch"

    def search_space(self, trial: Any, ordinal: bool = False) -> dict[str, Any]:
        p = self.params
        return {
            "lr": trial.suggest_float("lr", p.lr_min, p.lr_max, log=True),
            **self._architecture.search_space(trial, p),
            "batch_size": trial.suggest_categorical("batch_size", list(p.batch_sizes)),
            "loss": trial.suggest_categorical("loss", loss_choices(p, ordinal)),
            "sampling": trial.suggest_categorical("sampling", list(p.samplings)),
            "augmentation": trial.suggest_categorical("augmentation", list(p.augmentations)),
        }

    def _default_space(self) -> dict[str, Any]:
        p = self.params
        return {"lr": float(np.clip(1e-3, p.lr_min, p.lr_max)), **self._architecture.default(p),
                "batch_size": p.batch_sizes[0], "loss": p.losses[0], "sampling": p.samplings[0],
                "augmentation": "light" if "light" in p.augmentations else p.augmentations[0]}

    @property
    def _architecture(self) -> Any:
        from automed.nets import architecture

        return architecture(self.architecture)

    def _network(self, config: Any, n_classes: int, pretrained: bool = True) -> Any:
        """The untrained network of ``config`` (``pretrained``: with whatever initialisation the rung uses)."""
        from automed.nets import build_classifier

        return build_classifier(config, self.in_channels_, n_classes)

    def _config(self, space: dict[str, Any], dims: int) -> Any:
        """The training configuration of a search-space point (what is not common is the architecture's)."""
        from automed.deep.classification import ClassifierConfig

        hp = {k: v for k, v in space.items() if k not in _TRAINING_KEYS}
        return ClassifierConfig(self.architecture, dims, hp, space["loss"], space["sampling"], space["lr"],
                                space["batch_size"], space["augmentation"], mode=space.get("mode", "scratch"))

    # -- data ------------------------------------------------------------------------------

    @staticmethod
    def _split_ids(context: FitContext) -> tuple[list[str], list[str], list[str]]:
        """Training, validation and test case ids."""
        splits = context.splits
        if splits.get("kind") == "official" and splits.get("val"):
            return list(splits["train"]), list(splits["val"]), list(splits["test"])
        return list(context.folds[0]["train"]), list(context.folds[0]["val"]), list(splits["test"])

    def _arrays(self, context: FitContext) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Standardised images and class indices of the train, val and test cases."""
        from automed.deep.classification import channel_stats, image_arrays, standardize

        dataset = context.dataset
        cases = {c.case_id: c for c in dataset.cases}
        class_index = {c: k for k, c in enumerate(dataset.classes)}
        out, self.input_shape_ = {}, None
        for name, ids in zip(("train", "val", "test"), self._split_ids(context)):
            images = image_arrays(dataset, [cases[c] for c in ids], self.input_shape_, self.params.max_side)
            self.input_shape_ = images.shape[2:]  # the training images' shape, for validation, test and prediction
            out[name] = (self._images(images), np.array([class_index[cases[c].label] for c in ids]))
        self.in_channels_ = out["train"][0].shape[1]
        self.mean_, self.std_ = channel_stats(out["train"][0])
        return {k: (standardize(x, self.mean_, self.std_), y) for k, (x, y) in out.items()}

    def _images(self, images: np.ndarray) -> np.ndarray:
        """Network input from ``(N, C, *spatial)`` images (transfer rungs turn volumes into 2.5D)."""
        return images


    # -- planning ------------------------------------------------------------------------


    def plan(self, context: FitContext) -> RungPlan:
        """Time a few training steps of the default configuration and size trials and epochs."""
        from automed.deep.classification import ClassifierConfig, predict_proba
        from automed.deep.inference import pick_device

        device = pick_device()
        arrays = self._arrays(context)
        x_train = arrays["train"][0]
        space = self._default_space()
        config: ClassifierConfig = self._config(space, x_train.ndim - 2)
        too_large = self._memory_limit_reason(context, space, x_train, device)
        if too_large is not None:
            return RungPlan(None, None, skip_reason=too_large)
        seconds_per_step, memory, model, _ = probe_training(self._network(config, len(context.dataset.classes)),
                                                          config, x_train, device)
        started = time.perf_counter()
        predict_proba(model, arrays["val"][0], device)
        val_s = time.perf_counter() - started
        epoch_s = math.ceil(len(x_train) / config.batch_size) * seconds_per_step + val_s
        p, budget, shrunk = self.params, context.budget_s, []
        # after training, each final model scores the validation and test cases, mirrored with TTA
        mirrors = 2 ** (x_train.ndim - 2) if p.tta else 1
        n_val = len(arrays["val"][0])
        evaluation_s = val_s * (n_val + len(arrays["test"][0])) / max(1, n_val) * mirrors
        note = (f"probe on {device}: {seconds_per_step:.3f} s per step of {config.batch_size} images, "
                f"{epoch_s:.1f} s per epoch, {evaluation_s:.0f} s per model to score the validation and test cases")
        settings: dict[str, Any] = {"epoch_seconds": epoch_s, "device": str(device),
                                    "evaluation_seconds": evaluation_s}
        if budget is None:
            n_trials = p.n_trials if p.n_trials >= 2 else 0
            settings.update(trial_epochs=max(p.max_epochs // 3, p.min_epochs), final_epochs=p.max_epochs)
            trial_s = settings["trial_epochs"] * epoch_s + PROBE_OVERHEAD_S
            final_s = p.max_epochs * epoch_s + PROBE_OVERHEAD_S
        else:
            usable = budget - 10.0 - PROBE_OVERHEAD_S - evaluation_s
            if usable < p.min_epochs * epoch_s:
                need = p.min_epochs * epoch_s + 10.0
                return RungPlan(need, memory, note, shrunk, skip_reason=f"estimated {need / 60:.1f} min for the "
                                f"shortest training ({p.min_epochs} epochs) > the {budget / 60:.1f} min allotted.")
            n_trials, trial_s, final_s = split_time(usable, epoch_s, p, PROBE_OVERHEAD_S, shrunk)
        settings.update(n_trials=n_trials, trial_seconds=trial_s, final_seconds=final_s)
        plan = RungPlan(10.0 + n_trials * trial_s + final_s + evaluation_s, memory, note, shrunk, None, settings)
        return plan

    def _memory_limit_reason(self, context: FitContext, space: dict[str, Any], x_train: np.ndarray,
                             device: Any) -> str | None:
        """Why the largest searched batch cannot train within the memory limit (``--max-vram``, else
        90% of this process's share of the GPU), or None when it can or there is no limit."""
        from automed.deep.probe import memory_or_none
        from automed.deep.probe import cuda_memory_limit

        limit = context.max_vram_bytes or cuda_memory_limit(device)
        if limit is None:
            return None
        largest = max(self.params.batch_sizes)
        config = self._config({**space, "batch_size": largest}, x_train.ndim - 2)
        need = memory_or_none(lambda: probe_training(self._network(config, len(context.dataset.classes)), config,
                                                     x_train, device)[1])
        if need is not None and need <= limit:
            return None
        why = ("runs out of GPU memory in a training step" if need is None else
               f"needs an estimated {need / 2**30:.1f} GiB to train, more than the {limit / 2**30:.1f} GiB limit")
        return f"batch {largest} {why}; give the {self.name} rung smaller batch_sizes in the recipe."

    # -- fitting ---------------------------------------------------------------------------

    def fit(self, context: FitContext, plan: RungPlan | None = None) -> RungOutcome:
        from automed.deep.classification import mean_proba
        from automed.deep.inference import pick_device
        from automed.nets import count_parameters
        from automed.deep.gradcam import gradcam_overlays

        plan = plan or self.plan(context)
        settings = plan.settings
        device = pick_device()
        arrays = self._arrays(context)
        dims = arrays["train"][0].ndim - 2
        classes = context.dataset.classes
        started = time.monotonic()
        if "replay_space" in settings:  # automed fit --replay: the configuration another run chose
            space, search = dict(settings["replay_space"]), {"n_trials": 0, "n_pruned": 0,
                                                             "note": "replayed: the configuration of the run it replays"}
        elif settings["n_trials"] >= 2:
            space, search = self._search(context, arrays, dims, settings, device)
        else:
            space, search = self._default_space(), {"n_trials": 0, "n_pruned": 0, "note": "no search"}
        search_seconds = time.monotonic() - started
        config = self._config(space, dims)
        started = time.monotonic()
        members, records, memory = self._train_members(config, final_seconds(settings, search_seconds), arrays,
                                                       context, device, settings.get("final_epochs"),
                                                       settings.get("evaluation_seconds", 0.0))
        final_fit_s = time.monotonic() - started
        x_val, y_val = arrays["val"]
        val_proba = mean_proba(members, x_val, device, self.params.tta)
        threshold = choose_threshold(self.params.threshold, y_val, val_proba) if len(classes) == 2 else None
        t0 = time.monotonic()
        proba = mean_proba(members, arrays["test"][0], device, self.params.tta)
        predict_s = (time.monotonic() - t0) / max(1, len(proba))
        y_test = arrays["test"][1]
        summary = classification_summary(y_test, proba, classes, threshold, context.random_state)
        _, val_ids, test_ids = self._split_ids(context)
        gradcam = gradcam_overlays(members, arrays["test"][0], y_test, proba, decide_classes(proba, threshold),
                                   test_ids, classes, context.folder / "gradcam", device)
        self._save(context.folder, config, threshold, classes, members)
        metric = dict(summary[context.metric], name=context.metric, n=summary["n"])
        return RungOutcome(
            per_case=case_probabilities(test_ids, y_test, proba, classes),
            validation_per_case=case_probabilities(val_ids, y_val, val_proba, classes),
            summary={"metric": metric, "per_class": summary["per_class"],
                     "test": {k: summary[k] for k in TEST_SCORES},
                     "threshold": threshold, "gradcam": gradcam},
            details={"config": asdict(config), "search": search, "n_models": len(members), "training": records,
                     "throughput": training_throughput(records, records[0].get("flops_per_voxel"),
                                                       context.compute_peak),
                     "splits": {k: len(v[1]) for k, v in arrays.items()},
                     "initialisation": settings.get("initialisation", "random (trained from scratch)")},
            n_params=sum(count_parameters(m) for m in members), predict_seconds_per_case=predict_s,
            cost={"search_seconds": search_seconds, "final_fit_seconds": final_fit_s, "device": str(device),
                  "n_trials": search["n_trials"], "n_trials_pruned": search["n_pruned"],
                  "est_train_vram_bytes": memory},
        )

    def _train_members(self, config: Any, seconds: float, arrays: dict[str, Any], context: FitContext, device: Any,
                       epochs: int | None, evaluation_s: float = 0.0) -> tuple[list[Any], list[dict[str, Any]], int]:
        """Train the final models: seeds ``random_state + k`` of ``config``, averaged as a deep ensemble.

        The first is sized to ``seconds``; the others train as many epochs, for as long as
        what is left of ``seconds`` holds another one of the mean member time and the
        ``evaluation_s`` it then takes to score the validation and test cases, up to
        ``n_models``. A finished member is kept on resume (``final/seed<seed>/member.json``).

        Returns
        -------
        members : list of torch.nn.Module
            The members at their best validation epoch, in evaluation mode.
        records : list of dict
            Per member: seed, epochs, best epoch and validation AUC, stop reason, seconds.
        memory : int
            Estimated training memory of one member (they train one after another).
        """
        members, records = [], []
        for k in range(self.params.n_models):
            spent = sum(r["seconds"] for r in records)
            if k and context.budget_s is not None and seconds - spent < spent / k + evaluation_s:
                log.info("%s: %d of %d final models (another needs %.0f s, %.0f s left)", self.name, k,
                         self.params.n_models, spent / k + evaluation_s, seconds - spent)
                break
            seed = context.random_state + k
            folder = context.folder / "final" / f"seed{seed}"
            record_file = folder / "member.json"
            if record_file.is_file():
                record = json.loads(record_file.read_text())
            else:
                started = time.monotonic()
                # the first member may overrun its share as any training may; the optional others never do
                result, memory, _ = self._train(config, seconds - spent, arrays, context, device, folder,
                                                epochs=epochs, final=True, seed=seed, slack=1.0 if k else 1.25)
                record = {"seed": seed, "epochs": result.epochs, "planned_epochs": result.max_epochs,
                          "best_epoch": result.best_epoch,
                          "best_val_auc": result.best_value, "stop_reason": result.stop_reason,
                          "seconds": time.monotonic() - started, "memory": memory, "history": result.history,
                          "train_loss": result.train_loss, "batch_size": result.state["batch_size"],
                          "events": result.state["events"], **{k: result.state[k] for k in THROUGHPUT_FIELDS},
                          "flops_per_voxel": result.state.get("flops_per_voxel")}  # unknown for a transfer network
                partial = record_file.with_suffix(".tmp")  # a kill mid-write must not leave a torn record
                partial.write_text(json.dumps(record))
                os.replace(partial, record_file)
            epochs = json.loads((folder / "schedule.json").read_text())["epochs"]
            net = self._network(config, len(context.dataset.classes), pretrained=False)
            members.append(_load(net, folder / "best.pt", device))
            records.append(record)
        return members, records, records[0]["memory"]

    def _train(self, config: Any, seconds: float, arrays: dict[str, Any], context: FitContext, device: Any,
               folder: Path, on_epoch: Any = None, epochs: int | None = None, final: bool = False,
               seed: int | None = None, slack: float = 1.25) -> tuple[Any, int, Any]:
        """Probe ``config``, size its epochs to ``seconds`` (kept in ``schedule.json``), train.

        ``final`` marks a final model (whose ``best.pt`` the rung keeps); ``seed`` (default
        ``random_state``) seeds its initialisation, sampling and augmentation. Under a budget,
        no epoch starts after ``slack`` x ``seconds``.
        """
        import torch

        from automed.deep.classification import train_classifier

        began = time.monotonic()
        n_classes = len(context.dataset.classes)
        x_train = arrays["train"][0]
        seconds_per_step, memory, _, flops_per_voxel = probe_training(self._network(config, n_classes), config,
                                                                      x_train, device)
        folder.mkdir(parents=True, exist_ok=True)
        saved = folder / "schedule.json"
        p = self.params
        timed = context.budget_s is not None and not saved.is_file()
        fitted = timed and epochs is None  # epochs from the probe: re-planned from the measured epoch time
        if saved.is_file():
            epochs = json.loads(saved.read_text())["epochs"]
        elif epochs is None:
            epoch_s = math.ceil(len(x_train) / config.batch_size) * seconds_per_step
            epochs = int(np.clip((seconds - PROBE_OVERHEAD_S) // max(epoch_s, 1e-6), p.min_epochs, p.max_epochs))
        write_json(saved, {"epochs": epochs})
        patience = max(p.min_epochs, math.ceil(p.patience_fraction * epochs))
        deadline = time.monotonic() + seconds * slack if timed else None
        seed = context.random_state if seed is None else seed
        torch.manual_seed(seed)
        model = self._network(config, n_classes)
        result = train_classifier(config, epochs, patience, arrays["train"], arrays["val"], n_classes, folder, seed,
                                  device, deadline, on_epoch, model=model, epoch_cap=p.max_epochs,
                                  fit_seconds=seconds - (time.monotonic() - began) if fitted else None)
        result.state["flops_per_voxel"] = flops_per_voxel
        return result, memory, model

    def shared_search(self, context: FitContext, plan: RungPlan) -> SearchObjective | None:
        """The search's objective for an ``automed worker`` joining it: the fit's arrays and settings."""
        from automed.deep.inference import pick_device

        settings = plan.settings
        if plan.skip_reason or "replay_space" in settings or settings.get("n_trials", 0) < 2:
            return None
        arrays = self._arrays(context)
        return self._search_objective(context, arrays, arrays["train"][0].ndim - 2, settings, pick_device())

    def _search_objective(self, context: FitContext, arrays: dict[str, Any], dims: int, settings: dict[str, Any],
                          device: Any) -> SearchObjective:
        """Train a trial's configuration, pruned on its per-epoch validation AUC; an interrupted trial
        continues from its checkpoint in ``trials/<number>``."""
        import optuna

        trials_dir = context.folder / "trials"

        def objective(trial: optuna.Trial) -> float:
            space = self.search_space(trial, context.ordinal)
            folder = trials_dir / str(trial.user_attrs.get("continues", trial.number))

            def report(epoch: int, value: float) -> None:
                trial.report(value, epoch)
                if trial.should_prune():
                    shutil.rmtree(folder, ignore_errors=True)
                    raise optuna.TrialPruned()

            result, _, _ = self._train(self._config(space, dims), settings["trial_seconds"], arrays, context, device,
                                       folder, report, settings.get("trial_epochs"))
            shutil.rmtree(folder, ignore_errors=True)
            return result.best_value

        return SearchObjective(objective, optuna.pruners.MedianPruner(n_startup_trials=1,
                                                                      n_warmup_steps=self.params.min_epochs))

    def _search(self, context: FitContext, arrays: dict[str, Any], dims: int, settings: dict[str, Any],
                device: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """Optuna study pruned on validation AUC (shared with any ``automed worker`` that joins it)."""
        from optuna.trial import TrialState

        search = self._search_objective(context, arrays, dims, settings, device)
        study = open_study(self.name, context.optuna_storage, context.random_state, self._default_space(),
                           search.pruner, about={
                               "rung": self.name, "task": "classification", "metric": "auc",
                               "measured_on": "the validation cases, best epoch"})
        optimize_within(study, search, settings["n_trials"], None)
        done = finished_trials(study)
        space = {**self._default_space(), **study.best_trial.params}
        log.info("%s: search done, %d trials, best validation AUC %.4f with %s", self.name, len(done),
                 study.best_value, space)
        return space, {"n_trials": len(done), "n_pruned": sum(t.state == TrialState.PRUNED for t in done),
                       "best_value": study.best_value, "best_params": space, "workers": workers_of(done),
                       "objective": "best per-epoch validation AUC"}

    def _save(self, folder: Path, config: Any, threshold: float | None, classes: tuple[str, ...],
              members: list[Any]) -> None:
        """``model.pt`` (``{"members": [state dict, ...]}``) and ``model.json``; checkpoints are removed."""
        from automed.deep.loop import save_checkpoint

        save_checkpoint({"members": [m.state_dict() for m in members]}, folder / "model.pt")
        for checkpoints in ("final", "trials"):
            shutil.rmtree(folder / checkpoints, ignore_errors=True)
        write_record(folder / "model.json", self.params, config=asdict(config), threshold=threshold,
                     classes=list(classes), mean=self.mean_, std=self.std_, in_channels=self.in_channels_,
                     input_shape=list(self.input_shape_))

    # -- prediction ----------------------------------------------------------------------

    @classmethod
    def chosen(cls, details: dict[str, Any]) -> dict[str, Any]:
        """The configuration and the schedule its members shared, and how many members."""
        config, trainings = details.get("config"), details.get("training")
        if not (isinstance(config, dict) and trainings):
            return {}
        first = trainings[0]
        return {"replay_space": {**{k: config[k] for k in _TRAINING_KEYS if k in config}, **config.get("hp", {})},
                "final_epochs": first.get("planned_epochs") or first["epochs"], "n_trials": 0,
                "n_models": len(details["training"])}

    @classmethod
    def load(cls, folder: Path) -> DeepClassifierRung:
        """The fitted rung in ``folder``; weights are read with ``torch.load(weights_only=True)``."""
        import torch

        from automed.deep.classification import classifier_config_from_dict
        from automed.deep.inference import pick_device

        params, meta = read_record(folder / "model.json", cls.Params,
                                   ("config", "threshold", "classes", "mean", "std", "in_channels"))
        rung = cls(params)
        rung.config_ = classifier_config_from_dict(meta["config"])
        rung.threshold_, rung.mean_, rung.std_ = meta["threshold"], meta["mean"], meta["std"]
        rung.classes_ = tuple(meta["classes"])
        rung.device_ = pick_device()
        rung.in_channels_ = meta["in_channels"]
        rung.input_shape_ = tuple(meta["input_shape"]) if meta.get("input_shape") else None  # older runs: as given
        rung.members_ = []
        for state in torch.load(folder / "model.pt", map_location=rung.device_, weights_only=True)["members"]:
            net = rung._network(rung.config_, len(meta["classes"]), pretrained=False)
            net.load_state_dict(state)
            rung.members_.append(net.to(rung.device_).eval())
        return rung

    def predict_proba(self, dataset: Any, cases: list[Any], n_jobs: int = 1, progress: bool = False) -> np.ndarray:
        from automed.deep.classification import image_arrays, mean_proba, standardize

        # runs from before input shapes were recorded saw their images as they were
        images = image_arrays(dataset, cases, self.input_shape_, self.params.max_side if self.input_shape_ else None)
        images = standardize(self._images(images), self.mean_, self.std_)
        return mean_proba(self.members_, images, self.device_, self.params.tta)


def _load(model: Any, path: Path, device: Any) -> Any:
    import torch

    model.load_state_dict(torch.load(path, map_location=device, weights_only=True)["model"])
    return model.to(device).eval()
