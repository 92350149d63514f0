"""``apgbench validate``: check every dataset config and method registration."""

from __future__ import annotations

import typer
from rich.markup import escape

from .common import console, err_console


def validate() -> None:
    """Validate all dataset YAMLs (schema, reader and reader options) and every registered method's metadata."""
    from pydantic import ValidationError

    from ..config import config_dir
    from ..datasets import load_dataset_config
    from ..datasets.registry import check_reader
    from ..methods import available_methods

    problems, dataset_ids = [], set()
    paths = sorted((config_dir() / "datasets").glob("*.yaml"))
    for path in paths:
        try:
            config = load_dataset_config(path)
            dataset_ids.add(config.id)
            problems.extend(check_reader(config, path))
        except (ValueError, ValidationError) as err:
            problems.append(str(err))
    try:
        methods = available_methods()
    except Exception as err:
        problems.append(f"Loading methods failed: {err}")
        methods = {}
    for name, cls in methods.items():  # the † marks of the report name datasets by id
        unknown = sorted(cls.meta.trained_on - dataset_ids)
        if unknown:
            problems.append(
                f"Method '{name}' ({cls.__module__}) lists unknown dataset id(s) in trained_on: "
                f"{', '.join(unknown)}."
            )
    for problem in problems:
        err_console.print(f"[red]{escape(problem)}[/]", highlight=False, soft_wrap=True)
    if problems:
        raise typer.Exit(1)
    console.print(f"[green]OK[/]: {len(paths)} dataset configs and {len(methods)} methods are valid.")
