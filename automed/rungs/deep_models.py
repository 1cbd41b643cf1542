"""The fitted networks of a deep segmentation rung: saved weights, loading, and prediction.

A fitted rung keeps ``model.json`` (configuration, post-processing, the keys of its final
trainings) and one ``model_<key>.pt`` state dict per final training: ``fold0``, then
``fold0_1``, ``fold0_2``... when a fold has several members. Predictions average every
model's softmax (with mirrored test-time augmentation when the rung's ``tta`` is on).
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from automed.rungs.deep_params import DeepParams
from automed.rungs.records import read_record, write_record

__all__ = ["FittedSegmentationModels", "load_model", "plain_config", "training_key"]


class FittedSegmentationModels:
    """Saving, loading and prediction of a deep segmentation rung (mixed into the rung class,
    which provides ``params`` and ``_settings``)."""

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
        fp = _Shape(meta["n_channels"], meta["n_classes"])
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
        from automed.models.postprocess import apply_postprocessing

        pred = self.predict_proba(image).argmax(axis=0).astype(np.uint8)
        return apply_postprocessing(pred, self.postprocessing_)


@dataclass(frozen=True)
class _Shape:
    """What :func:`load_model` needs of a fingerprint."""

    n_channels: int
    n_classes: int


def load_model(config: Any, fingerprint: Any, path: Path, device: Any) -> Any:
    """The network of ``config`` with the weights saved at ``path`` (``weights_only``), in evaluation mode."""
    import torch

    from automed.nets import build_network

    model = build_network(config, fingerprint.n_channels, fingerprint.n_classes).to(device)
    model.load_state_dict(torch.load(path, map_location=device, weights_only=True)["model"])
    return model.eval()


def training_key(fold: int, member: int) -> str:
    """The name of a final training's folder and weights: ``fold0``, then ``fold0_1``, ``fold0_2``... for more members."""
    return f"fold{fold}" if member == 0 else f"fold{fold}_{member}"


def plain_config(obj: Any) -> dict[str, Any]:
    """A configuration dataclass as a JSON-ready dict (tuples as lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(obj).items()}
