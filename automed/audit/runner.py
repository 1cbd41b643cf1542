"""``automed audit RUN``: find the evidence, write ``audit.csv``/``audit.json`` and the picture, and show the audit
in the run's report."""

from __future__ import annotations

import logging
from pathlib import Path

from automed._dotted import load_attribute
from automed.audit.inputs import audit_inputs
from automed.audit.records import AUDIT_FOLDER, AUDIT_PNG, Audit, write_audit
from automed.data.atomic import write_bytes
from automed.errors import RecipeError, RunFolderError
from automed.ladder.outputs import check_output_folder, refuse_overlap, write_output_record
from automed.ladder.staging import STATE, add_to_manifest
from automed.tasks import get_task

__all__ = ["audit_run"]

log = logging.getLogger("automed")


def audit_run(run_folder: str | Path, out: str | Path | None = None, overwrite: bool = False) -> Audit:
    """Audit the finished run in ``run_folder``; write the audit to ``out`` or, by default, to the run's
    ``audit/`` folder, whose audit the run's report then shows (the report is rewritten).

    Parameters
    ----------
    run_folder : path
        A finished run folder.
    out : path, optional
        A folder to write ``audit.csv``, ``audit.json`` and ``audit.png`` to instead (the run folder is then
        left as it is); an existing one is replaced only when ``overwrite`` and automed wrote it.

    Raises
    ------
    RunFolderError
        ``run_folder`` is not a finished run, or ``out`` is taken.
    RecipeError
        The run's task has no auditor.
    """
    from automed.report import write_reports
    from automed.report.audit_pictures import audit_picture

    folder = Path(run_folder)
    if (folder / STATE).is_file():
        raise RunFolderError(f"{folder}: an unfinished fit (it holds {STATE}); finish it with `automed fit --resume "
                             "RUN` first.")
    inputs = audit_inputs(folder)
    task = get_task(inputs.run.recipe.task)
    if task.auditor is None:
        raise RecipeError(f"{folder}: automed audit does not audit {task.name} runs (the task names no auditor).")
    target = folder / AUDIT_FOLDER if out is None else Path(out)
    if out is not None:
        refuse_overlap(target, {"the run folder": folder, "the dataset": Path(inputs.run.record.data)})
    check_output_folder(target, overwrite or out is None, "audit")
    audit = load_attribute(task.auditor)(inputs)
    picture = audit_picture(inputs, audit)
    write_audit(target, audit)
    if picture is None:
        (target / AUDIT_PNG).unlink(missing_ok=True)  # an earlier audit's
    else:
        write_bytes(target / AUDIT_PNG, picture)
    write_output_record(target, "audit", {"run": str(folder.resolve())})
    log.info("audit: %s", audit.summary())
    if out is None:
        add_to_manifest(folder, [p for p in target.rglob("*") if p.is_file()])
        write_reports(folder)
    return audit
