"""Command-line interface: thin Typer commands over the library functions.

Heavy modules (runner, report, method libraries) are imported inside the commands, so ``apgbench --help``
starts fast and never imports torch.
"""

from __future__ import annotations

import typer

from . import datasets, methods
from .common import console, handle_errors
from .evaluate import evaluate
from .report import report
from .run import run
from .smoke import smoke
from .submit import status, submit
from .validate import validate

app = typer.Typer(
    help="Benchmark instance segmentation of cells and nuclei: datasets x methods -> mSA tables and plots.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command()(run)
app.command()(evaluate)
app.command()(report)
app.command()(validate)
app.command()(smoke)
app.command()(submit)
app.command()(status)
app.add_typer(datasets.app, name="datasets")
app.add_typer(methods.app, name="methods")


def main() -> None:
    """Console-script entry point."""
    app()


__all__ = ["app", "console", "handle_errors", "main"]
