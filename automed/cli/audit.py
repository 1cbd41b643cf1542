"""``automed audit``."""

from __future__ import annotations

import click

from automed.cli._errors import clean_errors


@click.command()
@click.argument("run_folder", type=click.Path(path_type=str))
@click.option("--out", type=click.Path(), help="Folder to write the audit to instead of RUN_FOLDER/audit (the run "
                                               "folder and its report are then left as they are).")
@click.option("--overwrite", is_flag=True,
              help="Replace an earlier audit in --out; refused while --out holds any file automed did not write.")
@clean_errors
def audit(run_folder: str, out: str | None, overwrite: bool) -> None:
    """Rank the cases of RUN_FOLDER by how suspect their labels (or images) look, from the predictions the run
    holds for cases its models did not train on; nothing is refitted. Writes audit.csv (every case, most suspect
    first, with its evidence and the reported metric without it), audit.json and audit.png, and adds the audit
    to the run's report."""
    from pathlib import Path

    from automed.audit.records import AUDIT_CSV, AUDIT_FOLDER
    from automed.audit.runner import audit_run

    result = audit_run(run_folder, out, overwrite=overwrite)
    where = Path(out) if out is not None else Path(run_folder) / AUDIT_FOLDER
    click.echo(f"{result.summary()} Wrote {where / AUDIT_CSV}"
               + ("" if out is not None else "; the report shows the audit") + ".")
    for rank, case in enumerate(result.suspects[:10], 1):
        click.echo(f"{rank:3d}. {case.case_id} ({case.split}): {'; '.join(case.reasons)}")
