"""``apgbench smoke``: try a method on one built-in image per domain."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from .common import console, handle_errors, parse_params


@handle_errors
def smoke(
    method: Annotated[str, typer.Argument(help="Method id.")],
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="Method parameter key=value.")] = None,
    device: Annotated[str, typer.Option(help="Torch device.")] = "cpu",
) -> None:
    """Check a method wrapper in seconds: validated output, score and time per domain; nothing is stored."""
    from ..smoke import smoke_test

    results = smoke_test(method, params=parse_params(param), device=device)
    table = Table("dataset", "domain", "mSA", "objects", "seconds", "status", title=f"smoke test of {method}")
    for r in results:
        status = "[green]ok[/]" if r.error is None else f"[red]{r.error}[/]"
        table.add_row(r.dataset, r.domain, "–" if r.msa is None else f"{r.msa:.3f}", str(r.n_objects),
                      f"{r.seconds:.2f}", status)
    console.print(table)
    if any(r.error for r in results):
        raise typer.Exit(1)
