"""Command-line interface: thin Typer commands over the library functions.

Heavy modules (runner, report, method libraries) are imported inside the commands, so ``apgbench --help``
starts fast and never imports torch.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from . import datasets, methods
from .common import DEBUG, console, err_console, handle_errors
from .evaluate import evaluate
from .report import report
from .run import run
from .smoke import smoke
from .submit import status, submit
from .sweep import sweep
from .validate import validate

app = typer.Typer(
    help="Benchmark instance segmentation of cells and nuclei: datasets x methods -> mSA tables and plots.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Width of the output when it is not a terminal (a pipe, a file, a SLURM log): rich would wrap at 80 columns,
# breaking paths and table rows that scripts and people grep for. $COLUMNS still wins.
PIPE_WIDTH = 1000


def _show_version(value: bool) -> None:
    if value:
        from .. import __version__

        console.print(f"apgbench {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="Show the version and exit."),
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show the full traceback of every error.")] = False,
) -> None:
    """Benchmark instance segmentation of cells and nuclei: datasets x methods -> mSA tables and plots."""
    DEBUG["on"] = debug
    for out in (console, err_console):
        if not out.is_terminal and not os.environ.get("COLUMNS"):
            out.width = PIPE_WIDTH


app.command()(run)
app.command()(evaluate)
app.command()(report)
app.command()(validate)
app.command()(smoke)
app.command()(submit)
app.command()(status)
app.command()(sweep)
app.add_typer(datasets.app, name="datasets")
app.add_typer(methods.app, name="methods")


def main() -> None:
    """Console-script entry point."""
    app()


__all__ = ["app", "console", "handle_errors", "main"]
