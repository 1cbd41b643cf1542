"""Which rung of a finished run to use: the report's recommendation among the rungs whose files are there."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from automed.rungs.fitted import missing_files

__all__ = ["usable_best"]

log = logging.getLogger("automed")


def usable_best(run_folder: Path, report: dict[str, Any], limits: dict[str, Any] | None = None) -> str | None:
    """The rung :func:`~automed.report.recommend.recommend` chooses under ``limits`` among the finished rungs of
    ``run_folder`` whose files are all there; a finished rung whose files are gone is named in a warning.

    Returns
    -------
    str or None
        The rung's name; None when no such rung meets the limits.
    """
    from automed.report.recommend import recommend

    gone = {r["name"]: lost for r in report["rungs"]
            if r.get("status") == "done" and (lost := missing_files(run_folder / "rungs" / r["name"]))}
    for name, lost in gone.items():
        log.warning("%s: rung %s finished, but its files are gone (%s); it is not used.", run_folder, name, lost[0])
    if not gone and not limits:
        return report.get("best_rung")
    rungs = [{**r, "status": "files missing"} if r["name"] in gone else r for r in report["rungs"]]
    return recommend({**report, "rungs": rungs}, limits)["rung"]
