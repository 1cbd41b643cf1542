"""``automed predict``."""

from __future__ import annotations

from pathlib import Path

import click

from automed.cli._errors import clean_errors


@click.command()
@click.argument("run_folder", type=click.Path(path_type=str))
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--out", required=True, type=click.Path(), help="Folder for masks (segmentation) or a CSV file (classification).")
@click.option("--split", type=click.Choice(["train", "val", "test"]), help="Classification .npz input: only this split.")
@click.option("--rung", help="Rung to use (default: the report's best rung).")
@click.option("--overwrite", is_flag=True, help="Replace an existing output folder.")
@click.option("--no-tta", "no_tta", is_flag=True,
              help="Skip mirrored test-time augmentation: 8x faster for a 3D network, slightly lower Dice.")
@click.option("--uncertainty-maps", is_flag=True,
              help="Segmentation: also write each case's per-voxel uncertainty image into OUT/uncertainty/.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@clean_errors
def predict(run_folder: str, inputs: tuple[str, ...], out: str, split: str | None, rung: str | None, overwrite: bool,
            no_tta: bool, uncertainty_maps: bool, quiet: bool) -> None:
    """Predict every image in INPUTS (a folder, a file, or several files) with the fitted RUN_FOLDER: masks, or a
    CSV of classes and probabilities."""
    from automed.ladder.predict import predict_run

    written = predict_run(run_folder, inputs[0] if len(inputs) == 1 else list(inputs), out, rung=rung, overwrite=overwrite, progress=not quiet, split=split,
                          tta=not no_tta, uncertainty_maps=uncertainty_maps)
    if written == [Path(out)]:  # classification: one CSV file
        click.echo(f"Wrote {out}")
    else:
        click.echo(f"Wrote {len(written)} file(s) to {out}")
