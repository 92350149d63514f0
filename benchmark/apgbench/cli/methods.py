"""``apgbench methods``: the method registry."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table

from .common import console, handle_errors

app = typer.Typer(help="List segmentation methods and whether they can run here.", no_args_is_help=True)


@app.command("list")
@handle_errors
def list_methods() -> None:
    """Every method, its extra, and whether its library and weights are available (torch is not imported)."""
    from ..methods import available_methods, method_status

    table = Table("id", "description", "extra", "status")
    for name, cls in available_methods().items():
        ok, why = method_status(cls)
        table.add_row(name, escape(cls.description), cls.extra or "-", f"[{'green' if ok else 'yellow'}]{escape(why)}[/]")
    console.print(table)
