"""Grad-CAM overlays (MONAI ``GradCAM``) of correctly and wrongly classified test images."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["gradcam_overlays", "target_layer"]


def target_layer(model: Any) -> str:
    """Name of the last convolutional block: ``layer4`` (MONAI ResNet), the VGG16 features' last
    ReLU or Inception-v3's ``Mixed_7c``."""
    names = dict(model.named_modules())
    for name in ("layer4", "backbone.features.29", "backbone.Mixed_7c"):
        if name in names:
            return name
    raise ValueError("no known Grad-CAM target layer in this network")


def gradcam_overlays(models: Sequence[Any], images: np.ndarray, labels: np.ndarray, proba: np.ndarray,
                     decided: np.ndarray, case_ids: list[str], classes: tuple[str, ...], folder: Path, device: Any,
                     per_group: int = 4) -> list[dict[str, Any]]:
    """Save a PNG per case for up to ``per_group`` correct and ``per_group`` wrong predictions.

    The map explains the predicted class: the mean of the (0-1 scaled) maps of ``models``,
    the members of a deep ensemble; volumes show their central slice. Returns
    ``[{"case_id", "label", "predicted", "probability", "correct", "file"}]`` with file
    names relative to ``folder``'s parent.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch
    from monai.visualize import GradCAM

    correct = np.flatnonzero(decided == labels)
    wrong = np.flatnonzero(decided != labels)
    chosen = [(i, True) for i in correct[np.argsort(-proba[correct].max(axis=1))][:per_group]]
    chosen += [(i, False) for i in wrong[np.argsort(-proba[wrong].max(axis=1))][:per_group]]
    if not chosen:
        return []
    folder.mkdir(parents=True, exist_ok=True)
    index = [i for i, _ in chosen]
    class_idx = torch.as_tensor(decided[index], device=device)
    per_model = []
    for model in models:
        cam = GradCAM(model.eval(), target_layers=target_layer(model))
        x = torch.from_numpy(images[index]).to(device).requires_grad_(True)
        per_model.append(cam(x, class_idx=class_idx).detach().cpu().numpy()[:, 0])
    maps = np.mean(per_model, axis=0)
    entries = []
    for (i, ok), heat in zip(chosen, maps):
        colour = images[i].shape[0] == 3 and images[i].ndim == 3  # a photograph: shown in its colours
        image = np.moveaxis(images[i], 0, -1) if colour else images[i].mean(axis=0)
        if colour:
            image = (image - image.min()) / max(float(np.ptp(image)), 1e-6)
        elif image.ndim == 3:  # volume: central slice of the first axis
            image, heat = image[image.shape[0] // 2], heat[heat.shape[0] // 2]
        heat = heat if heat.shape == image.shape[:2] else _resize(heat, image.shape[:2])
        name = f"{'correct' if ok else 'wrong'}_{case_ids[i]}.png"
        fig, axes = plt.subplots(1, 2, figsize=(4, 2.2))
        for ax in axes:
            ax.imshow(image, cmap=None if colour else "gray")
            ax.axis("off")
        axes[1].imshow(heat, cmap="jet", alpha=0.45)
        fig.suptitle(f"{case_ids[i]}: true {classes[labels[i]]}, predicted {classes[decided[i]]} "
                     f"({proba[i].max():.2f})", fontsize=6)
        fig.savefig(folder / name, dpi=100, bbox_inches="tight")
        plt.close(fig)
        entries.append({"case_id": case_ids[i], "label": classes[labels[i]], "predicted": classes[decided[i]],
                        "probability": float(proba[i].max()), "correct": ok, "file": f"{folder.name}/{name}"})
    return entries


def _resize(heat: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    from skimage.transform import resize

    return resize(heat, shape, order=1)
