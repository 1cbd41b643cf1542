"""What an audit reads from a finished run folder: the recipe, the reopened dataset, the finished rungs' results
and the rung the report recommends. Nothing is refitted."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from automed.errors import RunFolderError
from automed.ladder.reopen import Reopened, reopen_run
from automed.results import RungResult, read_result

__all__ = ["AuditInputs", "audit_inputs"]


@dataclass(frozen=True)
class AuditInputs:
    """A finished run as the audit sees it.

    Attributes
    ----------
    folder : Path
    run : Reopened
        The resolved recipe, the run record and the dataset opened with the recorded fingerprint and splits.
    trained : tuple of RungResult
        The finished rungs that trained a model of their own (rungs that combine others left out), in ladder order.
    best : RungResult or None
        The rung the report recommends (it may combine others).
    """

    folder: Path
    run: Reopened
    trained: tuple[RungResult, ...]
    best: RungResult | None


def audit_inputs(folder: Path) -> AuditInputs:
    """Read the finished run in ``folder``.

    Raises
    ------
    RunFolderError
        If ``folder`` is not a finished run or no rung finished.
    """
    from automed.rungs import rung_class

    report_path = folder / "report.json"
    if not report_path.is_file():
        raise RunFolderError(f"{folder}: no report.json; is this a finished automed run folder?")
    run = reopen_run(folder)
    done = [read_result(folder / "rungs" / spec.name) for spec in run.recipe.rungs
            if (folder / "rungs" / spec.name / "result.json").is_file()]
    done = [r for r in done if r.done]
    if not done:
        raise RunFolderError(f"{folder}: no rung finished, so there are no predictions to audit the labels with.")
    best_name = json.loads(report_path.read_text()).get("best_rung")
    trained = tuple(r for r in done if not rung_class(r.name, run.recipe.task).combines_others)
    return AuditInputs(folder, run, trained, next((r for r in done if r.name == best_name), None))
