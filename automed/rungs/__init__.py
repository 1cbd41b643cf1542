"""Rungs of the ladder. Each rung is one module; register it in ``REGISTRY``.

Rung modules import only light packages at module level so that reading a recipe
never imports torch or LightGBM.
"""

from __future__ import annotations

import importlib

from automed.errors import RecipeError

__all__ = ["REGISTRY", "rung_class"]

REGISTRY = {
    "segmentation": {
        "classical": "automed.rungs.classical:ClassicalRung",
        "unet2d": "automed.rungs.unet2d:UNet2DRung",
        "unetpp": "automed.rungs.unetpp:UNetPlusPlusRung",
        "unet3d": "automed.rungs.unet3d:UNet3DRung",
        "ensemble": "automed.rungs.segmentation_ensemble:SegmentationEnsembleRung",
    },
    "classification": {
        "classical": "automed.rungs.classical_classification:ClassicalClassifierRung",
        "cnn": "automed.rungs.cnn:CNNRung",
        "ssl": "automed.rungs.ssl:SSLRung",
        "vgg16": "automed.rungs.vgg16:VGG16Rung",
        "inception_v3": "automed.rungs.inception_v3:InceptionV3Rung",
        "ensemble": "automed.rungs.ensemble:EnsembleRung",
    },
}


def rung_class(name: str, task: str) -> type:
    """The rung class registered as ``name`` for ``task``."""
    known = REGISTRY.get(task, {})
    if name not in known:
        raise RecipeError(f"Unknown rung {name!r} for task '{task}'; known rungs are {sorted(known)}.")
    module, _, attr = known[name].partition(":")
    return getattr(importlib.import_module(module), attr)
