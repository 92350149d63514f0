"""``apgbench smoke``: try a method on one built-in image per domain."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from .common import console, handle_errors, parse_params
from .selection import check_device, check_params


@handle_errors
def smoke(
    method: Annotated[str, typer.Argument(help="Method id.")],
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="Method parameter key=value.")
    ] = None,
    device: Annotated[str, typer.Option(help="Torch device.")] = "cpu",
) -> None:
    """Check a method wrapper in seconds: validated output, score and time per domain; nothing is stored."""
    from ..smoke import smoke_test

    params = parse_params(param)
    check_params([method], params)
    check_device(device)
    results = smoke_test(method, params=params, device=device)
    table = Table("dataset", "domain", "mSA", "objects", "seconds", "status", title=f"smoke test of {method}")
    for r in results:
        status = "[green]ok[/]" if r.error is None else f"[red]{escape(r.error)}[/]"
        table.add_row(
            r.dataset,
            r.domain,
            "–" if r.msa is None else f"{r.msa:.3f}",
            str(r.n_objects),
            f"{r.seconds:.2f}",
            status,
        )
    console.print(table)
    if any(r.error for r in results):
        raise typer.Exit(1)
