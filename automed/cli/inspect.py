"""``automed inspect``."""

from __future__ import annotations

import click

from automed.cli._errors import clean_errors


@click.command()
@click.argument("data", type=click.Path(path_type=str))
@click.option("--task", type=click.Choice(["segmentation", "classification"]),
              help="Task (default: classification for a .npz or .csv, else segmentation).")
@click.option("--format", "data_format",
              type=click.Choice(["auto", "msd", "nnunet", "folders", "medmnist", "class_folders", "csv"]),
              default="auto", help="Dataset layout (default: detect).")
@click.option("--json", "as_json", is_flag=True, help="Print the fingerprint as JSON.")
@clean_errors
def inspect(data: str, task: str | None, data_format: str, as_json: bool) -> None:
    """Fingerprint the dataset DATA and list every problem found; fits nothing.

    Exits with status 1 when a problem would stop `automed fit`.
    """
    import json
    from pathlib import Path

    import numpy as np

    from automed.data.dataset import open_dataset

    if task == "classification" or (task is None and Path(data).suffix.lower() in (".npz", ".csv")):
        from automed.data.classification import open_classification, scan_classification, summarize

        dataset = open_classification(data, data_format)
        problems = scan_classification(dataset)
        if not problems:
            summary = summarize(dataset)
            if as_json:
                click.echo(json.dumps(summary, indent=2))
            else:
                click.echo(f"{data}: {summary['n_cases']} images, {summary['dims']}D, {summary['n_channels']} "
                           f"channel(s){' (colour: R, G, B)' if summary['n_channels'] == 3 else ''}, classes "
                           f"{list(summary['classes'].values())}, counts {summary['class_counts']}, "
                           f"{'official' if summary['official_split'] else 'no official'} test split")
        _report_problems(data, problems, [])
        return
    from automed.data.fingerprint import scan_dataset

    dataset = open_dataset(data, data_format)
    fingerprint, problems, warnings = scan_dataset(dataset)
    if fingerprint is not None and as_json:
        click.echo(json.dumps(fingerprint.to_dict(), indent=2))
    elif fingerprint is not None:
        fp = fingerprint
        click.echo(f"{data}: {dataset.format} layout, {fp.n_cases} cases, {fp.dims}D, {fp.n_channels} channel(s) "
                   f"{list(fp.channel_names)}, modality {fp.modality} -> normalisation "
                   + ", ".join(f"{n}: {s}" for n, s in zip(fp.channel_names, fp.channel_normalization)))
        click.echo(f"classes {fp.classes}; voxel fractions "
                   + ", ".join(f"{k}: {v:.4f}" for k, v in fp.class_voxel_fraction.items()))
        if any(raw != cls for raw, cls in fp.label_mapping.items()):
            click.echo(f"label values mapped {fp.label_mapping}")
        native = [r.get("native_spacing", r["spacing"]) for r in fp.cases]
        click.echo(f"stored: median spacing {[round(float(s), 3) for s in np.median(native, axis=0)]}; working grid: "
                   f"median shape {list(fp.median_shape)}, spacing "
                   + (f"{list(fp.target_spacing)} ({fp.spacing_note})" if fp.target_spacing else f"as stored ({fp.spacing_note})"))
    _report_problems(data, problems, warnings)


def _report_problems(data: str, problems: list[str], warnings: list[str]) -> None:
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    for problem in problems:
        click.echo(f"problem: {problem}", err=True)
    if problems:
        raise click.ClickException(f"{len(problems)} problem(s) found in {data}.")
    click.echo("No problems found.")
