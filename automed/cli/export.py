"""``automed export``."""

from __future__ import annotations

import click

from automed.cli._errors import clean_errors


@click.command()
@click.argument("run_folder", type=click.Path(path_type=str))
@click.option("--out", required=True, type=click.Path(), help="Folder to write the model and automed_model.json into.")
@click.option("--rung", help="Rung to export (default: the report's recommended rung).")
@click.option("--format", "format_", type=click.Choice(["onnx", "torchscript", "joblib"]), default="onnx",
              show_default=True, help="onnx/torchscript for a deep rung, joblib for the classical rung.")
@click.option("--overwrite", is_flag=True,
              help="Replace an earlier export in --out; refused while --out holds any file its automed_model.json "
                   "does not list (a file of yours is never deleted).")
@clean_errors
def export(run_folder: str, out: str, rung: str | None, format_: str, overwrite: bool) -> None:
    """Export a fitted rung of RUN_FOLDER with a JSON of everything needed to use it (channels, spacing,
    normalisation, window, classes, label mapping, post-processing). An ONNX export is checked with
    onnxruntime on a real case against automed's own prediction."""
    from automed.export import export_run

    record = export_run(run_folder, out, rung=rung, format=format_, overwrite=overwrite)
    check = record.get("check")
    click.echo(f"Exported {record['rung']} ({format_}) to {out}: {', '.join(record['files'])}"
               + (f"; onnxruntime vs automed on {check['case']}: max |difference| "
                  f"{check['max_abs_difference_probability']:.2e} in probability" if check else ""))
