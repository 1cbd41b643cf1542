"""Rungs of the ladder, registered by name for each task.

An entry is ``"module:Class"``, or ``("module:Class", settings)`` for a rung that is a
configuration of a shared implementation: the settings become class attributes of a
subclass made here, so e.g. ``unet3d`` is data, not a module. Rung modules import only
light packages at module level so that reading a recipe never imports torch or LightGBM.
"""

from __future__ import annotations

import importlib
from functools import lru_cache

from automed.errors import RecipeError

__all__ = ["REGISTRY", "rung_class"]

_DEEP = "automed.rungs.deep:DeepSegmentationRung"
_DEEP_CLASSIFIER = "automed.rungs.deep_classification:DeepClassifierRung"
_TRANSFER = "automed.rungs.transfer:TransferRung"

REGISTRY = {
    "segmentation": {
        "classical": "automed.rungs.classical:ClassicalRung",
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
        "ensemble": "automed.rungs.segmentation_ensemble:SegmentationEnsembleRung",
    },
    "classification": {
        "classical": "automed.rungs.classical_classification:ClassicalClassifierRung",
        "cnn": (_DEEP_CLASSIFIER, {"architecture": "automed.nets.resnet:ResNet"}),
        "ssl": ("automed.rungs.ssl:SSLRung", {"architecture": "automed.nets.resnet:ResNet"}),
        "vgg16": (_TRANSFER, {"architecture": "automed.nets.vgg16:VGG16"}),
        "inception_v3": (_TRANSFER, {"architecture": "automed.nets.inception_v3:InceptionV3"}),
        "ensemble": "automed.rungs.classification_ensemble:ClassificationEnsembleRung",
    },
}


def rung_class(name: str, task: str) -> type:
    """The rung class registered as ``name`` for ``task``."""
    known = REGISTRY.get(task, {})
    if name not in known:
        raise RecipeError(f"Unknown rung {name!r} for task '{task}'; known rungs are {sorted(known)}.")
    return _made(task, name)


@lru_cache(maxsize=None)
def _made(task: str, name: str) -> type:
    """The class of a registry entry (one class per entry, so it compares equal across calls)."""
    entry = REGISTRY[task][name]
    path, settings = entry if isinstance(entry, tuple) else (entry, None)
    module, _, attr = path.partition(":")
    base = getattr(importlib.import_module(module), attr)
    if settings is None:
        return base
    return type(base.__name__, (base,), {"name": name, "__module__": base.__module__, **settings,
                                          "__doc__": f"Rung ``{name}``: {base.__name__} with {settings}."})
