"""The learned registration rung: MONAI's VoxelMorph (a U-Net predicting a displacement, optionally integrated by
scaling and squaring into a diffeomorphism), trained unsupervised on random pairs of training volumes (MSE or
local NCC between the warped moving and the fixed image, plus a diffusion penalty on the field) and, where the
volumes have labels, with an auxiliary Dice loss on the warped labels.

MONAI's ``VoxelMorph``/``Warp`` are used rather than the ``voxelmorph`` package: they are torch-native (the
package is TensorFlow-first), already installed with automed, and their displacement is in grid voxels along the
array axes, the convention every rung's field is scored in (checked against scipy in the tests).

An Optuna study chooses the regularisation weight, learning rate, width, similarity and integration on an inner
split of the training volumes (pairs of its held-out volumes score a trial); the chosen configuration is then
trained on every training volume. Steps are sized to the allotment from timed probe steps.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from automed.models.search import SearchObjective, open_study, optimize_within
from automed.rungs.base import FitContext, RungOutcome, RungPlan
from automed.rungs.registration.base import GridVolumes, RegistrationRung, TuningPairs, evaluate_pairs

__all__ = ["VoxelMorphParams", "VoxelMorphRung"]

log = logging.getLogger("automed")
DEFAULT = {"width": 16, "lr": 1e-3, "smoothness": 1.0, "similarity": "mse", "integration_steps": 7}
PROBE_STEPS = 3


@dataclass(frozen=True)
class VoxelMorphParams:
    """Parameters of the VoxelMorph rung.

    Attributes
    ----------
    n_trials : int
        Optuna trials (fewer when the allotment is short; below 2, the default configuration).
    search_fraction : float
        Share of the training steps the search takes.
    min_steps, max_steps : int
        Bounds of the final training's steps.
    widths : tuple of int
        The U-Net's first-level widths searched.
    similarities : tuple of str
        ``"mse"`` and/or ``"lncc"`` (local normalised cross-correlation, window 7).
    label_weight : float
        Weight of the warped-label Dice loss where the training volumes have labels (0: unsupervised).
    n_tuning_pairs : int
        Pairs of inner validation volumes that score a trial.
    """

    n_trials: int = 4
    search_fraction: float = 0.35
    min_steps: int = 100
    max_steps: int = 4000
    widths: tuple[int, ...] = (8, 16)
    similarities: tuple[str, ...] = ("mse", "lncc")
    label_weight: float = 1.0
    n_tuning_pairs: int = 6


class VoxelMorphRung(RegistrationRung):
    """VoxelMorph on the common grid."""

    name = "voxelmorph"
    Params = VoxelMorphParams
    trains_networks = True
    cost_weight = 2.0

    def search_space(self, trial: Any) -> dict[str, Any]:
        return {"width": trial.suggest_categorical("width", list(self.params.widths)),
                "lr": trial.suggest_float("lr", 2e-4, 3e-3, log=True),
                "smoothness": trial.suggest_float("smoothness", 0.1, 5.0, log=True),
                "similarity": trial.suggest_categorical("similarity", list(self.params.similarities)),
                "integration_steps": trial.suggest_categorical("integration_steps", [0, 7])}

    def _default(self) -> dict[str, Any]:
        """The first trial, and the configuration without a search: :data:`DEFAULT` within the searched choices."""
        similarity = DEFAULT["similarity"] if DEFAULT["similarity"] in self.params.similarities \
            else self.params.similarities[0]
        return {**DEFAULT, "width": max(self.params.widths), "similarity": similarity}

    def plan(self, context: FitContext) -> RungPlan:
        from automed.deep.inference import pick_device

        if len(context.dataset.training) < (1 if context.dataset.atlas else 2):
            return RungPlan(None, skip_reason="no training volumes to learn from: every volume is in an "
                                              "evaluation pair (give training images or pairs with split train).")
        device = pick_device()
        step_s = self._probe(context, self._default(), device)
        n_eval = len(context.dataset.evaluation)
        evaluation_s = n_eval * step_s
        note = f"probe on {device}: {step_s:.2f} s per training step (widest network)"
        p = self.params
        if context.budget_s is None:
            final, trial_steps, trials = p.max_steps // 2, max(p.min_steps, p.max_steps // 8), p.n_trials
        else:
            usable = context.budget_s - evaluation_s - 10.0
            if usable < p.min_steps * step_s:
                need = evaluation_s + 10.0 + p.min_steps * step_s
                return RungPlan(need, note=note, min_seconds=need, skip_reason=(
                    f"estimated {need:.0f} s for the shortest training ({p.min_steps} steps) > the "
                    f"{context.budget_s:.0f} s allotted."))
            steps = int(usable // step_s)
            trials = p.n_trials if steps * p.search_fraction >= 2 * p.min_steps else 0
            trial_steps = int(steps * p.search_fraction // max(trials, 1)) if trials else 0
            if trials and trial_steps < p.min_steps:
                trials = max(2, int(steps * p.search_fraction // p.min_steps)) if steps * p.search_fraction >= \
                    2 * p.min_steps else 0
                trial_steps = int(steps * p.search_fraction // max(trials, 1)) if trials else 0
            final = min(p.max_steps, steps - trials * trial_steps)
        seconds = (trials * trial_steps + final) * step_s + evaluation_s
        return RungPlan(seconds, note=note, min_seconds=p.min_steps * step_s + evaluation_s,
                        settings={"n_trials": trials if trials >= 2 else 0, "trial_steps": trial_steps,
                                  "final_steps": final, "seconds_per_step": step_s})

    def fit(self, context: FitContext, plan: RungPlan | None = None) -> RungOutcome:
        import torch

        from automed.deep.inference import pick_device

        plan = plan or self.plan(context)
        settings = plan.settings
        device = pick_device()
        volumes = GridVolumes(context.dataset, context.fingerprint)
        started = time.monotonic()
        if "replay_config" in settings:
            config, search = dict(settings["replay_config"]), {"n_trials": 0, "note": "replayed"}
        elif settings["n_trials"] >= 2:
            config, search = self._search(context, settings, volumes, device)
        else:
            config, search = self._default(), {"n_trials": 0, "note": "no search: the default configuration"}
        search_seconds = time.monotonic() - started
        started = time.monotonic()
        training = list(context.dataset.training)
        self.network_, losses = self._train(config, context, volumes, training, settings["final_steps"], device,
                                            context.random_state)
        final_seconds = time.monotonic() - started
        self.config_, self.device_ = config, device
        torch.save(self.network_.state_dict(), context.folder / "model.pt")
        (context.folder / "model.json").write_text(json.dumps({
            "config": config, "params": asdict(self.params), "dims": context.fingerprint["dims"],
            "channels": self._channels(context, volumes)}, indent=2))
        per_case = evaluate_pairs(self, context, volumes)
        from automed.nets import count_parameters

        return RungOutcome(per_case, details={"config": config, "search": search, "final_steps":
                                              settings["final_steps"], "final_loss": losses[-20:]},
                           n_params=count_parameters(self.network_),
                           predict_seconds_per_case=float(np.mean([c["seconds"] for c in per_case])),
                           cost={"search_seconds": search_seconds, "final_fit_seconds": final_seconds,
                                 "device": str(device), "n_trials": search["n_trials"]})

    # -- training ----------------------------------------------------------------------------

    def _network(self, config: dict[str, Any], dims: int, channels: int) -> Any:
        from monai.networks.nets import VoxelMorph, VoxelMorphUNet

        w = int(config["width"])
        backbone = VoxelMorphUNet(dims, 2 * channels, 2 * w, (w, 2 * w, 2 * w, 2 * w, 2 * w, 2 * w), (w, w))
        return VoxelMorph(backbone, integration_steps=int(config["integration_steps"]), spatial_dims=dims)

    @staticmethod
    def _channels(context: FitContext, volumes: GridVolumes) -> int:
        return int(volumes[context.dataset.evaluation[0].fixed].image.shape[0])

    def _losses(self, config: dict[str, Any], dims: int) -> tuple[Any, Any]:
        from monai.losses import DiffusionLoss, LocalNormalizedCrossCorrelationLoss

        if config["similarity"] == "lncc":
            similarity = LocalNormalizedCrossCorrelationLoss(spatial_dims=dims, kernel_size=7)
        else:
            import torch

            similarity = torch.nn.MSELoss()
        return similarity, DiffusionLoss()

    def _train(self, config: dict[str, Any], context: FitContext, volumes: GridVolumes, training: list[str],
               steps: int, device: Any, seed: int) -> tuple[Any, list[float]]:
        """Train a network of ``config`` for ``steps`` random pairs of the ``training`` volumes."""
        import torch
        from monai.networks.blocks import Warp

        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        dims, channels = context.fingerprint["dims"], self._channels(context, volumes)
        network = self._network(config, dims, channels).to(device)
        optimizer = torch.optim.Adam(network.parameters(), lr=float(config["lr"]))
        similarity, smoothness = self._losses(config, dims)
        warp = Warp(mode="bilinear", padding_mode="zeros")
        labels = context.fingerprint["labels"]
        use_labels = self.params.label_weight > 0 and labels and all(
            volumes[v].label is not None for v in training + ([context.dataset.atlas] if context.dataset.atlas else []))
        n_classes = max(labels) + 1 if labels else 0
        losses = []
        network.train()
        for _ in range(steps):
            fixed_id, moving_id = self._draw(rng, training, context.dataset.atlas)
            fixed, moving = volumes[fixed_id], volumes[moving_id]
            f = torch.from_numpy(fixed.image)[None].to(device)
            m = torch.from_numpy(moving.image)[None].to(device)
            warped, ddf = network(m, f)
            loss = similarity(warped, f) + float(config["smoothness"]) * smoothness(ddf)
            if use_labels:
                loss = loss + self.params.label_weight * _dice_loss(
                    warp(_one_hot(moving.label, n_classes, device), ddf), _one_hot(fixed.label, n_classes, device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        network.eval()
        return network, losses

    @staticmethod
    def _draw(rng: np.random.Generator, training: list[str], atlas: str | None) -> tuple[str, str]:
        if atlas is not None:
            return training[rng.integers(len(training))], atlas
        i, j = rng.choice(len(training), 2, replace=False)
        return training[i], training[j]

    def _probe(self, context: FitContext, config: dict[str, Any], device: Any) -> float:
        """Seconds per training step of ``config``, timed over a few steps after a warm-up one."""
        volumes = GridVolumes(context.dataset, context.fingerprint)
        training = list(context.dataset.training)
        self._train(config, context, volumes, training, 1, device, 0)
        started = time.perf_counter()
        self._train(config, context, volumes, training, PROBE_STEPS, device, 0)
        return (time.perf_counter() - started) / PROBE_STEPS

    def _search(self, context: FitContext, settings: dict[str, Any], volumes: GridVolumes,
                device: Any) -> tuple[dict, dict]:
        """An Optuna study on an inner split of the training volumes: each trial trains on the inner training
        volumes and is scored on pairs of the inner validation ones."""

        training = list(context.dataset.training)
        rng = np.random.default_rng(context.random_state)
        order = [training[i] for i in rng.permutation(len(training))]
        n_val = max(2, round(0.2 * len(order))) if len(order) >= 6 else 0
        inner_val, inner_train = order[:n_val], order[n_val:] or order
        if context.dataset.atlas is not None:
            pairs = [(v, context.dataset.atlas) for v in (inner_val or order)[: self.params.n_tuning_pairs]]
        else:
            pool = inner_val if len(inner_val) >= 2 else order
            pairs = [(pool[(i + 1) % len(pool)], pool[i]) for i in range(min(len(pool), self.params.n_tuning_pairs))]
        tuning = TuningPairs(pairs, volumes, context.fingerprint)

        def objective(trial: Any) -> float:
            config = {**self._default(), **self.search_space(trial)}
            self.network_, _ = self._train(config, context, volumes, inner_train, settings["trial_steps"], device,
                                           context.random_state)
            self.config_, self.device_ = config, device
            return tuning.score(self)

        study = open_study(self.name, context.optuna_storage, context.random_state, self._default(), about={
            "rung": self.name, "task": "registration", "metric": tuning.metric,
            "measured_on": "pairs of inner validation volumes (held out of the trial's training)"})
        optimize_within(study, SearchObjective(objective), settings["n_trials"], None)
        config = {**self._default(), **study.best_params}
        log.info("voxelmorph: search done, %d trials, best %.4f with %s", len(study.trials), study.best_value, config)
        return config, {"n_trials": len(study.trials), "best_value": study.best_value, "best_params": config,
                        "inner_train_volumes": len(inner_train), "tuning_pairs": len(pairs),
                        "trial_steps": settings["trial_steps"]}

    # -- fitted ------------------------------------------------------------------------------

    @classmethod
    def load(cls, folder: Path) -> VoxelMorphRung:
        import torch

        from automed.deep.inference import pick_device

        record = json.loads((folder / "model.json").read_text())
        rung = cls(cls.Params(**{k: tuple(v) if isinstance(v, list) else v for k, v in record["params"].items()}))
        rung.config_, rung.device_ = record["config"], pick_device()
        rung.network_ = rung._network(rung.config_, record["dims"], record["channels"])
        rung.network_.load_state_dict(torch.load(folder / "model.pt", map_location="cpu", weights_only=True))
        rung.network_.to(rung.device_).eval()
        return rung

    @classmethod
    def chosen(cls, details: dict[str, Any]) -> dict[str, Any]:
        return {"replay_config": details["config"], "n_trials": 0} if details.get("config") else {}

    def register(self, fixed: np.ndarray, moving: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            _, ddf = self.network_(torch.from_numpy(moving)[None].to(self.device_),
                                   torch.from_numpy(fixed)[None].to(self.device_))
        return ddf[0].cpu().numpy().astype(np.float32)


def _one_hot(label: np.ndarray, n_classes: int, device: Any) -> Any:
    import torch

    tensor = torch.from_numpy(label.astype(np.int64)).to(device)
    return torch.nn.functional.one_hot(tensor, n_classes).movedim(-1, 0)[None].float()


def _dice_loss(warped: Any, fixed: Any) -> Any:
    """1 - the mean soft Dice over the foreground classes of two one-hot maps ``(1, classes, *grid)``."""
    dims = tuple(range(2, warped.ndim))
    overlap = (warped * fixed).sum(dims)
    total = warped.sum(dims) + fixed.sum(dims)
    return 1 - (2 * overlap[:, 1:] / total[:, 1:].clamp(min=1e-6)).mean()
