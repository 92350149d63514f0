"""Pieces shared by the CLI commands: console, options, error handling."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import yaml
from rich.console import Console
from rich.markup import escape

console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])

ResultsRootOption = Annotated[
    Path | None,
    typer.Option(
        "--results-root", envvar="APGBENCH_RESULTS_DIR", help="Results store root (default: ./results)."
    ),
]
DataRootOption = Annotated[
    Path | None,
    typer.Option("--data-root", envvar="APGBENCH_DATA_DIR", help="Dataset cache root (default: ./datasets)."),
]
MethodsOption = Annotated[
    str,
    typer.Option(
        "--method", "-m", help="Method id(s), comma-separated; 'all': every method that can run here."
    ),
]
ParamOption = Annotated[
    list[str] | None, typer.Option("--param", "-p", help="Method parameter key=value (repeatable).")
]
LimitOption = Annotated[int | None, typer.Option(help="Score only the first N images (smoke run).", min=1)]


#: Set by ``apgbench --debug``: errors show their full traceback, apgbench's own ones included.
DEBUG = {"on": False}


def handle_errors(func: F) -> F:
    """Turn apgbench's own errors into one red sentence and exit code 1 (no traceback).

    Only :class:`~apgbench.errors.ApgbenchError` (bad input, a missing resource, an environment that cannot
    do it) and a full or read-only disk are reported so; anything else is a bug and shows its traceback,
    as does every error under ``apgbench --debug``.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from ..errors import ApgbenchError
        from ..results.schema import UNWRITABLE_ERRNOS, unwritable_message

        try:
            return func(*args, **kwargs)
        except ApgbenchError as err:
            if DEBUG["on"]:
                raise
            message = str(err)
        except OSError as err:
            if err.errno not in UNWRITABLE_ERRNOS or DEBUG["on"]:
                raise
            # disk full or read-only anywhere (results, report, data cache): one sentence naming the path
            message = unwritable_message(err, err.filename or "the output folder")
        err_console.print(f"[bold red]Error:[/] {escape(message)}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)

    return wrapper  # type: ignore[return-value]


def parse_params(items: list[str] | None) -> dict[str, Any]:
    """Parse ``--param key=value`` items; values are read as YAML scalars (numbers, booleans, strings)."""
    from ..errors import InvalidInputError

    params: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidInputError(f"--param expects key=value, got '{item}'.")
        params[key.strip()] = yaml.safe_load(value)
    return params
