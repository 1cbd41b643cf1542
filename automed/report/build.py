"""Assemble ``report.json`` from the files of a run folder (no torch, no GPU)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from automed.audit.records import AUDIT_FOLDER
from automed.errors import RunFolderError
from automed.report.recommend import recommend
from automed.results import RESULT, read_result
from automed.run_record import read_run

__all__ = ["build_report"]

REQUIRED = ("recipe.yaml", "fingerprint.json", "splits.json", "run.json")


def build_report(folder: Path) -> dict[str, Any]:
    """The report of the run in ``folder``.

    Every rung the recipe names gets an entry (``"not run"`` where it has no ``result.json``);
    ``recommendation`` is :func:`~automed.report.recommend.recommend`'s choice and sentence, and
    ``best_rung`` is the recommended rung (the one ``predict`` uses by default).

    Raises
    ------
    RunFolderError
        If the folder lacks a file every run has, or its ``run.json`` lacks what a report needs.
    """
    import yaml

    missing = [name for name in REQUIRED if not (folder / name).is_file()]
    if missing:
        raise RunFolderError(f"{folder}: not a complete automed run folder (missing {', '.join(missing)}).")
    recipe = yaml.safe_load((folder / "recipe.yaml").read_text())
    fingerprint = json.loads((folder / "fingerprint.json").read_text())
    run = read_run(folder)
    rungs = []
    for spec in recipe["rungs"]:
        rung_folder = folder / "rungs" / spec["name"]
        if (rung_folder / RESULT).is_file():
            rungs.append(read_result(rung_folder).to_dict())
        else:
            rungs.append({"name": spec["name"], "status": "not run", "reason": None, "metric": None,
                          "per_class": None, "cost": None, "postprocessing": None})
    report = {
        "task": recipe["task"],
        "dataset": {"path": run.data, "format": run.format,
                    **{k: v for k, v in fingerprint.items() if k not in ("cases", "intensity")}},
        "hardware": run.hardware,
        "compute_peak": run.compute_peak,
        "versions": run.versions,
        "automed_commit": run.automed_commit,
        "command_line": run.command_line,
        "n_jobs": run.n_jobs,
        "dataset_listing": run.dataset_listing,
        "replay_of": run.replay_of,
        "seed": run.seed,
        "created_at": run.created_at,
        "fit_seconds": run.fit_seconds,
        "n_folds": recipe["n_folds"],
        "recipe": recipe,
        "constraints": run.constraints,
        "stopped_early": run.stopped_early,
        "rungs": rungs,
        "learning_curve": (json.loads((folder / "learning_curve.json").read_text())
                           if (folder / "learning_curve.json").is_file() else None),
        "audit": _audit(folder),
        "raters": (json.loads((folder / "raters.json").read_text()) if (folder / "raters.json").is_file() else None),
        "quality": _quality(folder),
        "site_shift": (json.loads((folder / "site_shift.json").read_text())
                       if (folder / "site_shift.json").is_file() else None),
    }
    report["recommendation"] = recommend(report)
    report["best_rung"] = report["recommendation"]["rung"]
    return report


def _quality(folder: Path) -> dict[str, Any] | None:
    """How well each rung's quality score picked out its bad validation cases (``quality.json`` without the
    training images' descriptors); None for a run without the record."""
    from automed.quality.record import read_quality

    record, _ = read_quality(folder)
    if record is None:
        return None
    return {"rungs": {name: {k: v for k, v in c.to_dict().items() if k != "validation"}
                      for name, c in record.rungs.items()},
            "n_reference_images": len(record.reference.rows), "seconds": record.seconds, "notes": list(record.notes)}


def _audit(folder: Path) -> dict[str, Any] | None:
    """The run's own audit (``audit/audit.json``, written by ``automed audit RUN``) as the report holds it."""
    from dataclasses import asdict

    from automed.audit.records import read_audit

    audit = read_audit(folder / AUDIT_FOLDER)
    return None if audit is None else asdict(audit)
