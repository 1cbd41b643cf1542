"""What a run records about the machine and the software, for reproducibility."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from typing import Any

__all__ = ["automed_version", "hardware", "versions"]

PACKAGES = ("automed", "numpy", "scipy", "scikit-learn", "scikit-image", "lightgbm", "optuna",
            "SimpleITK", "torch", "monai", "pyradiomics-bhklab")


def automed_version() -> str:
    """The installed automed's version, recorded in every file a run writes for a later one to read."""
    return metadata.version("automed")


def versions() -> dict[str, str | None]:
    """Python and package versions, read from metadata (nothing heavy is imported)."""
    out: dict[str, str | None] = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def hardware() -> dict[str, Any]:
    """CPU, cores, memory and CUDA device (only looked up if torch is already imported)."""
    import psutil

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "n_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "ram_bytes": psutil.virtual_memory().total,
        "gpu": None,
    }
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info["gpu"] = {"name": props.name, "memory_bytes": props.total_memory}
    return info
