"""What a run records about the machine and the software, for reproducibility."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from typing import Any

__all__ = ["automed_commit", "automed_version", "command_line", "hardware", "n_cores", "versions"]

PACKAGES = ("automed", "numpy", "scipy", "scikit-learn", "scikit-image", "lightgbm", "optuna",
            "SimpleITK", "torch", "monai", "pyradiomics-bhklab")


def automed_version() -> str:
    """The installed automed's version, recorded in every file a run writes for a later one to read."""
    return metadata.version("automed")


def automed_commit() -> dict[str, Any] | None:
    """The git commit automed runs from (``{"sha", "dirty"}``) when it is a git checkout (an editable
    install), else None: an installed wheel is named by its version alone."""
    import subprocess
    from pathlib import Path

    source = Path(__file__).resolve().parent.parent
    if not (source / ".git").exists():
        return None
    try:
        sha = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True,
                             check=True, timeout=10).stdout.strip()
        changes = subprocess.run(["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
                                 capture_output=True, text=True, check=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"sha": sha, "dirty": bool(changes.strip())}


def command_line() -> str:
    """The command that started this process, quoted as a shell would take it."""
    import shlex

    return shlex.join(sys.argv)


def versions() -> dict[str, str | None]:
    """Python and package versions, read from metadata (nothing heavy is imported)."""
    out: dict[str, str | None] = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def n_cores() -> int:
    """The cores this process may run on (its affinity where the platform tells it, else all)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def hardware() -> dict[str, Any]:
    """CPU model, architecture, cores, memory and CUDA device (only looked up if torch is already imported)."""
    import psutil

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "architecture": platform.machine(),
        "n_cores": n_cores(),
        "ram_bytes": psutil.virtual_memory().total,
        "gpu": None,
    }
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info["gpu"] = {"name": props.name, "memory_bytes": props.total_memory}
    return info


def _cpu_model() -> str:
    """The CPU's model name (Linux: ``/proc/cpuinfo``), else what the platform module says."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
