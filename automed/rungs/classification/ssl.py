"""Rung ``ssl``: the ``cnn`` network initialised by self-supervised pretraining (Models Genesis).

The encoder first learns to restore corrupted images (:mod:`automed.deep.genesis`) on
the training and validation images, never the test images, plus any unlabelled images
in ``unlabeled`` (``--unlabeled DIR``). It is then fine-tuned with a classification head
using the ``cnn`` rung's best configuration (or the default one when ``cnn`` did not
run), so the report can set it beside the same network trained from scratch.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from automed._params import check_range
from automed.errors import DataError
from automed.rungs.base import FitContext, RungOutcome, RungPlan
from automed.rungs.classification.deep_params import DeepClassifierParams
from automed.rungs.classification.deep import DeepClassifierRung

__all__ = ["SSLParams", "SSLRung"]

SCRATCH_REFERENCE = "cnn"


@dataclass(frozen=True)
class SSLParams(DeepClassifierParams):
    """Parameters of the ``ssl`` rung: those of :class:`DeepClassifierParams` (used when ``cnn``
    did not run; no search by default) plus:

    Parameters
    ----------
    pretrain_fraction : float
        Share of the allotment spent on self-supervised pretraining.
    pretrain_epochs : int
        Upper bound on pretraining epochs.
    unlabeled : str or None
        Folder of extra unlabelled images (same shape as the training images).
    """

    n_trials: int = 0
    pretrain_fraction: float = 0.4
    pretrain_epochs: int = 200
    unlabeled: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("the ssl rung", "pretrain_fraction", self.pretrain_fraction, 0.05, 0.9)
        check_range("the ssl rung", "pretrain_epochs", self.pretrain_epochs, 1)


class SSLRung(DeepClassifierRung):
    """ResNet pretrained to restore corrupted images, then fine-tuned."""

    name = "ssl"
    Params = SSLParams

    def plan(self, context: FitContext) -> RungPlan:
        """The ``cnn`` plan for the whole allotment, with ``pretrain_fraction`` of the final training moved to pretraining."""
        self._space = self._reference_space(context)
        plan = super().plan(context)
        if plan.skip_reason is not None:
            return plan
        final_s = plan.settings["final_seconds"]
        pretrain_s = final_s * self.params.pretrain_fraction
        settings = {**plan.settings, "final_seconds": final_s - pretrain_s, "pretrain_seconds": pretrain_s,
                    "space": self._space}
        if "final_epochs" in settings:
            settings["pretrain_epochs"] = self.params.pretrain_epochs
        plan = replace(plan, settings=settings, note=f"{plan.note}; {pretrain_s / 60:.1f} min of pretraining")
        return plan

    def _reference_space(self, context: FitContext) -> dict[str, Any]:
        """The ``cnn`` rung's chosen configuration when it ran in this fit, else the default."""
        from automed.deep.classification import classifier_config_from_dict

        for result in context.finished:
            config = result.details.get("config") if result.name == SCRATCH_REFERENCE else None
            if config:
                chosen = classifier_config_from_dict(config)
                return {**chosen.hp, "lr": chosen.lr, "batch_size": chosen.batch_size, "loss": chosen.loss,
                        "sampling": chosen.sampling, "augmentation": chosen.augmentation}
        return super()._default_space()

    def _default_space(self) -> dict[str, Any]:
        return getattr(self, "_space", None) or super()._default_space()

    def fit(self, context: FitContext, plan: RungPlan | None = None) -> RungOutcome:
        from automed.deep.genesis import pretrain
        from automed.deep.inference import pick_device

        plan = plan or self.plan(context)
        self._space = plan.settings["space"]
        arrays = self._arrays(context)
        images = np.concatenate([arrays["train"][0], arrays["val"][0], self._unlabeled(arrays["train"][0])])
        config = self._config(self._space, images.ndim - 2)
        self._encoder_state = None
        net = super()._network(config, len(context.dataset.classes))
        info = pretrain(net, images, plan.settings["pretrain_seconds"],
                        plan.settings.get("pretrain_epochs", self.params.pretrain_epochs), config.batch_size,
                        config.lr, context.folder / "pretrain", context.random_state, pick_device())
        self._encoder_state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
        outcome = super().fit(context, plan)
        info.update(images=len(images), unlabeled=len(images) - len(arrays["train"][0]) - len(arrays["val"][0]))
        outcome.details.update(pretraining=info, compare_with=SCRATCH_REFERENCE,
                               initialisation="self-supervised (Models Genesis restoration) on the training, "
                                              "validation and unlabelled images")
        outcome.cost["pretrain_seconds"] = info["seconds"]
        return outcome

    def _network(self, config: Any, n_classes: int, pretrained: bool = True) -> Any:
        """The pretrained trunk with a new classification head (its own initialisation per seed)."""
        net = super()._network(config, n_classes)
        state = getattr(self, "_encoder_state", None)
        if pretrained and state is not None:
            head = {k: v for k, v in net.state_dict().items() if k.startswith("fc.")}
            net.load_state_dict({**state, **head})
        return net

    def _save(self, folder: Path, config: Any, threshold: float | None, classes: tuple[str, ...],
              members: list[Any]) -> None:
        super()._save(folder, config, threshold, classes, members)
        shutil.rmtree(folder / "pretrain", ignore_errors=True)

    def _unlabeled(self, like: np.ndarray) -> np.ndarray:
        """Standardised unlabelled images shaped like ``like`` (empty when none are given)."""
        from automed.data.inputs import find_images
        from automed.data.io import read_image
        from automed.deep.classification import resized, standardize

        if not self.params.unlabeled:
            return like[:0]
        folder = Path(self.params.unlabeled)
        if not folder.is_dir():
            raise DataError(f"{folder}: unlabelled image folder not found.")
        images = []
        for case in find_images(folder, ("image",)):
            path = case.image_paths[0]
            image = read_image(path, colour=like.shape[1] == 3)
            array = (image.array if image.colour else image.array[None]).astype(np.float32)
            if array.shape[0] != like.shape[1] or array.ndim != like.ndim - 1:
                raise DataError(f"{path}: unlabelled image has {len(array)} channel(s) and shape {array.shape[1:]}; "
                                f"the training images have {like.shape[1]} and {like.shape[2:]}.")
            images.append(resized(array, like.shape[2:]))  # at the network's input shape, as the labelled ones
        if not images:
            raise DataError(f"{folder}: holds no images.")
        return standardize(np.stack(images), self.mean_, self.std_)
