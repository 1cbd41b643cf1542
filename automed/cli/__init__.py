"""The ``automed`` command line: one module per command, heavy imports inside commands."""

from __future__ import annotations

import click

from automed.cli.audit import audit
from automed.cli.export import export
from automed.cli.fit import fit
from automed.cli.inspect import inspect
from automed.cli.predict import predict
from automed.cli.report import report
from automed.cli.worker import worker

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="automed")
def main() -> None:
    """AutoML for medical images: a classical baseline first, deep learning only where it pays.

    \b
    automed inspect DATA                       check a dataset, fit nothing
    automed fit --task segmentation DATA --out RUN
    automed predict RUN IMAGES --out DIR
    automed report RUN                         re-render report.{json,md,html}
    automed export RUN --out DIR               the model as ONNX/TorchScript + automed_model.json
    automed audit RUN                          which labels look wrong (audit.csv, in the report)
    automed worker RUN --storage URL           run trials of RUN's searches while it is fitted
    """
    _exit_on_sigterm()


def _exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so staging folders are cleaned up as on Ctrl-C."""
    import signal
    import sys
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


for command in (audit, export, fit, inspect, predict, report, worker):
    main.add_command(command)
