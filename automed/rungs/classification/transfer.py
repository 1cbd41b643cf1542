"""What the ImageNet transfer rungs (``vgg16``, ``inception_v3``) share.

The backbone comes from torchvision with ImageNet weights: through torchvision's weights
API, or from ``--pretrained-weights FILE`` (a saved state dict) on machines without
internet. Optuna chooses between a **frozen** backbone with a new linear head (backbone
features are computed once, so each epoch trains only the head) and **fine-tuning** the
whole network with the backbone at a tenth of the head's learning rate; fine-tuning is
left out of the search when the probe says even its shortest training does not fit the
allotment. Without pretrained weights the rung is skipped (``without_weights: skip``,
the default) or trains from scratch and says so (``scratch``): random weights are never
presented as transfer.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from automed._jsonio import write_json
from automed._params import check_choice
from automed.rungs.base import FitContext, RungOutcome, RungPlan
from automed.rungs.classification.deep_params import ClassifierTrainingParams, loss_choices
from automed.rungs.classification.deep_planning import PROBE_OVERHEAD_S, probe_training
from automed.rungs.classification.deep import DeepClassifierRung

__all__ = ["TransferParams", "TransferRung"]

MODES = ("frozen", "finetune")


@dataclass(frozen=True)
class TransferParams(ClassifierTrainingParams):
    """Parameters of a transfer rung: those of
    :class:`~automed.rungs.classification.deep_params.ClassifierTrainingParams` (augmentation applies
    to fine-tuning only; one final model by default, since every member keeps a whole
    backbone; images kept up to 299 pixels a side, Inception-v3's input) plus:

    Parameters
    ----------
    weights : str
        ``"imagenet"`` (torchvision's weights API) or the path of a saved state dict.
    without_weights : {"skip", "scratch"}
        What to do when ImageNet weights cannot be obtained.
    modes : tuple of {"frozen", "finetune"}
        Searched training modes.
    """

    n_trials: int = 4
    search_fraction: float = 0.3
    max_epochs: int = 60
    min_epochs: int = 3
    batch_sizes: tuple[int, ...] = (16, 32)
    max_side: int = 299
    augmentations: tuple[str, ...] = ("none", "light")
    lr_min: float = 1e-4
    n_models: int = 1
    weights: str = "imagenet"
    without_weights: str = "skip"
    modes: tuple[str, ...] = MODES

    owner = "a transfer rung"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice(self.owner, "without_weights", self.without_weights, ("skip", "scratch"))
        for value in self.modes or (None,):
            check_choice(self.owner, "modes", value, MODES)


class TransferRung(DeepClassifierRung):
    """The torchvision transfer rungs; the registry sets ``architecture`` (a
    :class:`~automed.nets.TransferArchitecture`)."""

    Params = TransferParams

    @classmethod
    def climb_family(cls) -> str:
        return "ImageNet transfer"

    def unavailable(self) -> str | None:
        """Why there are no weights to transfer when the rung would be skipped without them (``without_weights:
        skip``): obtaining them here is what its plan does first. The state dict is not kept: holding ImageNet
        weights (VGG16's are over 500 MB) while the rungs below fit costs more than reading them again from the hub cache."""
        if self.params.without_weights != "skip":
            return None
        return self._load_weights({})

    def search_space(self, trial: Any, ordinal: bool = False) -> dict[str, Any]:
        p = self.params
        return {"mode": trial.suggest_categorical("mode", list(self._modes)),
                "lr": trial.suggest_float("lr", p.lr_min, p.lr_max, log=True),
                "batch_size": trial.suggest_categorical("batch_size", list(p.batch_sizes)),
                "loss": trial.suggest_categorical("loss", loss_choices(p, ordinal)),
                "sampling": trial.suggest_categorical("sampling", list(p.samplings)),
                "augmentation": trial.suggest_categorical("augmentation", list(p.augmentations))}

    def _default_space(self) -> dict[str, Any]:
        p = self.params
        return {"mode": self._modes[0], "lr": float(np.clip(1e-3, p.lr_min, p.lr_max)), "batch_size": p.batch_sizes[0],
                "loss": p.losses[0], "sampling": p.samplings[0], "augmentation": p.augmentations[0]}

    def _config(self, space: dict[str, Any], dims: int) -> Any:
        """2D (volumes become 2.5D images); augmentation applies to fine-tuning only."""
        augmentation = space["augmentation"] if space["mode"] == "finetune" else "none"
        return super()._config({**space, "augmentation": augmentation}, 2)

    def _network(self, config: Any, n_classes: int, pretrained: bool = True) -> Any:
        from automed.nets.transfer_net import transfer_net

        state = self._state if pretrained else None
        return transfer_net(self._architecture, state, self.params.weights, n_classes, self.in_channels_)

    def _images(self, images: np.ndarray) -> np.ndarray:
        from automed.deep.transfer import orthogonal_slices

        return orthogonal_slices(images) if images.ndim == 5 else images

    # -- planning ------------------------------------------------------------------------

    def plan(self, context: FitContext) -> RungPlan:
        """Obtain the weights, time feature extraction and a fine-tuning step, size the search."""
        settings: dict[str, Any] = {}
        skip = self._load_weights(settings)
        if skip is not None:
            return RungPlan(None, note="no pretrained weights", skip_reason=skip)
        from automed.deep.inference import pick_device

        device = pick_device()
        arrays = self._arrays(context)
        n_classes = len(context.dataset.classes)
        n_all = sum(len(y) for _, y in arrays.values())
        x_train = arrays["train"][0]
        net = self._network(self._config({**self._default_space(), "mode": "finetune"}, 2), n_classes).to(device)
        batch = x_train[: self.params.batch_sizes[0]]
        started = time.perf_counter()
        _features(net, batch, device)
        extract_s = (time.perf_counter() - started) / len(batch) * n_all
        step_s, memory, _, _ = probe_training(net, self._config({**self._default_space(), "mode": "finetune"}, 2), x_train,
                                   device)
        finetune_epoch_s = math.ceil(len(x_train) / len(batch)) * step_s + extract_s * len(arrays["val"][1]) / n_all
        p, budget, shrunk = self.params, context.budget_s, []
        modes = [m for m in p.modes if m != "finetune" or budget is None
                 or (extract_s + p.min_epochs * finetune_epoch_s) * 2 < budget]
        if "finetune" in p.modes and "finetune" not in modes:
            shrunk.append(f"fine-tuning left out of the search: {finetune_epoch_s / 60:.1f} min per epoch at "
                          f"{self._input_size()} px")
        if not modes:
            return RungPlan(extract_s + p.min_epochs * finetune_epoch_s, memory, skip_reason=(
                f"fine-tuning needs about {finetune_epoch_s / 60:.1f} min per epoch, more than the "
                f"{(budget or 0) / 60:.1f} min allotted, and frozen training is not among the modes."), shrunk=shrunk)
        if budget is not None and extract_s + 10 > budget:
            return RungPlan(extract_s, memory, skip_reason=f"extracting backbone features takes about "
                            f"{extract_s / 60:.1f} min, more than the {budget / 60:.1f} min allotted.", shrunk=shrunk)
        epoch_s = finetune_epoch_s if modes == ["finetune"] else finetune_epoch_s / 20  # frozen: head-only epochs
        trial_s = final_s = 0.0
        n_trials = p.n_trials if p.n_trials >= 2 else 0
        if budget is None:
            settings.update(trial_epochs=max(p.max_epochs // 3, p.min_epochs), final_epochs=p.max_epochs)
        else:
            usable = budget - extract_s - 10.0
            search_s = usable * p.search_fraction if n_trials else 0.0
            trial_s = search_s / n_trials if n_trials else 0.0
            final_s = usable - search_s
            if "finetune" in modes:
                n_fit = int(search_s // (p.min_epochs * epoch_s + PROBE_OVERHEAD_S))
                if n_fit < n_trials:
                    shrunk.append(f"trials {n_trials} -> {max(n_fit, 0)} to fit the search time")
                    n_trials = n_fit if n_fit >= 2 else 0
        settings.update(n_trials=n_trials, trial_seconds=trial_s, final_seconds=final_s, modes=modes,
                        extract_seconds=extract_s, epoch_seconds=epoch_s, device=str(device),
                        initialisation=self._initialisation)
        note = (f"probe on {device}: backbone features {extract_s:.0f} s for {n_all} images, fine-tuning "
                f"{finetune_epoch_s:.1f} s per epoch")
        plan = RungPlan(extract_s + 10 + n_trials * trial_s + final_s if budget else None, memory, note, shrunk,
                        None, settings)
        return plan

    def fit(self, context: FitContext, plan: RungPlan | None = None) -> RungOutcome:
        """As the other deep classifiers; a resumed or replayed fit follows a saved plan without planning, so the
        weights its plan chose are loaded here."""
        if plan is not None and not hasattr(self, "_state"):
            self._load_weights(plan.settings)
        return super().fit(context, plan)

    def _input_size(self) -> int:
        return self._architecture.input_size

    def _load_weights(self, settings: dict[str, Any]) -> str | None:
        """Set ``self._state`` and the modes; return a skip reason when there are no weights to transfer."""
        from automed.deep.transfer import WeightsUnavailable, pretrained_state_dict

        self._modes = tuple(settings.get("modes", self.params.modes))
        try:
            self._state = pretrained_state_dict(self._architecture, self.params.weights)
            self._initialisation = f"pretrained ({self.params.weights})"
            return None
        except WeightsUnavailable as exc:
            if self.params.without_weights == "skip":
                return f"{exc}."
            self._state, self._modes = None, ("finetune",)
            self._initialisation = f"random: trained from scratch, NOT transfer ({exc})"
            return None

    # -- training ------------------------------------------------------------------------

    def _train(self, config: Any, seconds: float, arrays: dict[str, Any], context: FitContext, device: Any,
               folder: Path, on_epoch: Any = None, epochs: int | None = None, final: bool = False,
               seed: int | None = None, slack: float = 1.25) -> tuple[Any, int, Any]:
        """Fine-tune as the other deep rungs do; a frozen backbone trains only the head, on cached features."""
        if config.mode == "finetune":
            return super()._train(config, seconds, arrays, context, device, folder, on_epoch, epochs, final, seed,
                                  slack)
        import torch

        from automed.deep.classification import train_classifier
        from automed.deep.loop import save_checkpoint

        n_classes = len(context.dataset.classes)
        features = self._cached_features(arrays, device, n_classes)
        p = self.params
        folder.mkdir(parents=True, exist_ok=True)
        epochs = epochs or p.max_epochs
        write_json(folder / "schedule.json", {"epochs": epochs})
        seed = context.random_state if seed is None else seed
        torch.manual_seed(seed)
        head = torch.nn.Linear(features["train"][0].shape[1], n_classes)
        result = train_classifier(config, epochs, max(p.min_epochs, math.ceil(p.patience_fraction * epochs)),
                                  features["train"], features["val"], n_classes, folder, seed, device, None, on_epoch,
                                  model=head)
        net = self._network(config, n_classes)
        if final:
            head.load_state_dict(torch.load(folder / "best.pt", map_location="cpu", weights_only=True)["model"])
            net.head.load_state_dict(head.state_dict())
            save_checkpoint({"model": net.state_dict()}, folder / "best.pt")
        memory = 16 * sum(q.numel() for q in head.parameters()) + 4 * sum(q.numel() for q in net.parameters())
        return result, memory, net

    def _cached_features(self, arrays: dict[str, Any], device: Any, n_classes: int) -> dict[str, Any]:
        """Backbone features of every split, computed once per fit."""
        if getattr(self, "_features", None) is None:
            net = self._network(self._config(self._default_space(), 2), n_classes).to(device)
            self._features = {k: (_features(net, x, device), y) for k, (x, y) in arrays.items()}
        return self._features


def _features(net: Any, images: np.ndarray, device: Any, batch_size: int = 32) -> np.ndarray:
    import torch

    net.eval()
    out = []
    with torch.no_grad(), torch.autocast(device.type, enabled=device.type == "cuda"):
        for i in range(0, len(images), batch_size):
            out.append(net.features(torch.from_numpy(images[i:i + batch_size]).to(device)).float().cpu().numpy())
    return np.concatenate(out)
