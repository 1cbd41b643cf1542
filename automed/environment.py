"""What a run records about the machine and the software, for reproducibility."""

from __future__ import annotations

import logging
import platform
import sys
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from automed.errors import RecipeError

__all__ = ["automed_commit", "automed_version", "available_memory_bytes", "command_line", "hardware", "n_cores",
           "resolve_n_jobs", "versions"]

log = logging.getLogger("automed")

# Memory one worker process needs: an idle loky worker holding numpy, SciPy, scikit-image, SimpleITK
# and LightGBM measured 280 MiB resident; the rest is one case's arrays and features.
WORKER_BYTES = 512 * 2**20

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
    """The command that started this process, quoted as a shell would take it, with any password in a
    URL (``--storage postgresql://user:PASSWORD@host/db``) masked: it is written to run.json and the report."""
    import re
    import shlex

    return re.sub(r"(://[^:/@\s]*):[^@\s]*@", r"\1:***@", shlex.join(sys.argv))


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
    """The cores this process may run on: its CPU affinity and, in a container, its cgroup CPU quota
    (joblib's ``cpu_count``, which reads both)."""
    from joblib import cpu_count

    return cpu_count()


def available_memory_bytes() -> int:
    """Memory this process can still take: the machine's available memory, or less where a cgroup
    (v2) memory limit of this process's container is closer."""
    import psutil

    available = int(psutil.virtual_memory().available)
    # psutil reports the machine's memory, not a container's limit; cgroup v2 keeps it in two files
    cgroup = Path("/sys/fs/cgroup")
    try:
        limit = (cgroup / "memory.max").read_text().strip()
        if limit != "max":
            available = min(available, int(limit) - int((cgroup / "memory.current").read_text()))
    except (OSError, ValueError):
        pass
    return max(0, available)


def resolve_n_jobs(requested: int) -> int:
    """The number of workers to run for a recipe's ``n_jobs``, capped at what this process has.

    ``n_jobs`` follows joblib: ``-1`` is every core, ``-2`` every core but one, and so on. More workers
    than cores only compete for them, and each worker needs memory (:data:`WORKER_BYTES`), so the
    number is capped at the cores this process may use and at the workers its free memory holds,
    with a warning that says so.

    Raises
    ------
    RecipeError
        If a negative ``n_jobs`` leaves no core (``-5`` on 2 cores).
    """
    cores = n_cores()
    wanted = requested if requested > 0 else cores + 1 + requested
    if wanted < 1:
        raise RecipeError(f"n_jobs {requested} means all cores but {-requested - 1}, and this process may use {cores}; "
                          "give -1 (all cores) or a number of workers >= 1.")
    memory = available_memory_bytes()
    fits = max(1, memory // WORKER_BYTES)
    resolved = min(wanted, cores, fits)
    if resolved < wanted:
        why = [f"this process may use {cores} core(s) (its CPU affinity and cgroup quota)"] if cores < wanted else []
        if fits < min(wanted, cores):
            why.append(f"{memory / 2**30:.1f} GiB of free memory holds {fits} worker(s) of "
                       f"{WORKER_BYTES / 2**30:.1f} GiB")
        _warn_once(f"n_jobs {requested} asks for {wanted} workers; using {resolved}: {' and '.join(why)}.")
    return resolved


@lru_cache(maxsize=None)
def _warn_once(message: str) -> None:
    """Log ``message`` as a warning the first time only (the workers are resolved once per rung)."""
    log.warning(message)


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
