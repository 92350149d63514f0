"""Pieces shared by the CLI commands: console, options, error handling."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, Any, Callable, TypeVar

import typer
import yaml
from rich.console import Console
from rich.markup import escape

console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])

ResultsRootOption = Annotated[
    Path | None,
    typer.Option("--results-root", envvar="APGBENCH_RESULTS_DIR", help="Results store root (default: ./results)."),
]
DataRootOption = Annotated[
    Path | None,
    typer.Option("--data-root", envvar="APGBENCH_DATA_DIR", help="Dataset cache root (default: ./datasets)."),
]


def handle_errors(func: F) -> F:
    """Turn the library's expected errors into one red sentence and exit code 1 (no traceback)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from ..methods.base import MethodUnavailableError
        from ..results.schema import UNWRITABLE_ERRNOS, unwritable_message

        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort):  # click's Exit is a RuntimeError: let it through untouched
            raise
        except KeyError as err:  # unknown ids: the message already suggests the closest ones
            message = err.args[0] if err.args else str(err)
        except (MethodUnavailableError, FileNotFoundError, ValueError, TypeError, RuntimeError) as err:
            message = str(err)
        except OSError as err:
            if err.errno not in UNWRITABLE_ERRNOS:
                raise
            # disk full or read-only anywhere (results, report, data cache): one sentence naming the path
            message = unwritable_message(err, err.filename or "the output folder")
        err_console.print(f"[bold red]Error:[/] {escape(message)}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)

    return wrapper  # type: ignore[return-value]


def parse_params(items: list[str] | None) -> dict[str, Any]:
    """Parse ``--param key=value`` items; values are read as YAML scalars (numbers, booleans, strings)."""
    params: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--param expects key=value, got '{item}'.")
        params[key.strip()] = yaml.safe_load(value)
    return params
