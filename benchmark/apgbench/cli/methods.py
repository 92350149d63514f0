"""``apgbench methods``: the method registry."""

from __future__ import annotations

from typing import Annotated

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
        table.add_row(
            name,
            escape(cls.description),
            cls.extra or "-",
            f"[{'green' if ok else 'yellow'}]{escape(why)}[/]",
        )
    console.print(table)


def _models_per_domain(method) -> dict[str, str]:
    """The model a method loads for each domain by default (its metadata; "-" for methods without weights)."""
    from ..config import DOMAINS

    return {domain: method.meta.model_for(domain) or "-" for domain in DOMAINS}


@app.command("show")
@handle_errors
def show_method(
    method_id: Annotated[str, typer.Argument(metavar="ID", help="Method id (see `apgbench methods list`).")],
    as_json: Annotated[
        bool, typer.Option("--json/--no-json", help="Print one JSON object (with a `params` key).")
    ] = False,
) -> None:
    """A method's description, extra, model per domain, default parameters and their allowed values."""
    import json

    from rich.markup import escape

    from ..methods import get_method

    cls = get_method(method_id)
    method = cls()
    info = {
        "id": cls.name,
        "description": cls.description,
        "extra": cls.extra,
        "models": _models_per_domain(method),
        "params": dict(method.params),
        "param_choices": {k: list(v) for k, v in cls.param_choices.items()},
    }
    if as_json:
        typer.echo(json.dumps(info, indent=2, default=str))
        return
    console.print(f"[bold]{escape(cls.name)}[/]: {escape(cls.description)}")
    console.print(f"extra: {escape(cls.extra or '-')}", highlight=False)
    models = Table("domain", "model")
    for domain, model in info["models"].items():
        models.add_row(domain, escape(model))
    console.print(models)
    params = Table("parameter", "default", *(["choices"] if cls.param_choices else []))
    for key, value in info["params"].items():
        choices = [", ".join(map(str, cls.param_choices.get(key, ())))] if cls.param_choices else []
        params.add_row(key, escape(json.dumps(value, default=str)), *map(escape, choices))
    console.print(params)
