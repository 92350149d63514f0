"""``apgbench sweep``: score a grid of AIS / APG parameters on one dataset, at the cost of the work it needs."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ..errors import InvalidInputError
from .common import DataRootOption, console, err_console, handle_errors, parse_params
from .selection import check_device, select_datasets


@handle_errors
def sweep(
    dataset: Annotated[
        str, typer.Option("--dataset", "-d", help="One dataset id, or a folder of your images + labels.")
    ],
    method: Annotated[str, typer.Option("--method", "-m", help="ais, apg or apg-bd.")],
    grid: Annotated[
        list[str], typer.Option("--grid", "-g", help="key=v1,v2,... (repeatable): the values to try.")
    ],
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="Fixed parameter key=value (repeatable).")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N images.", min=1)] = None,
    device: Annotated[str, typer.Option(help="Torch device: cpu, cuda, cuda:1, mps.")] = "cpu",
    out: Annotated[Path, typer.Option(help="Folder for sweep.csv, sweep.md and sweep.png.")] = Path("sweep"),
    data_root: DataRootOption = None,
    domain: Annotated[str | None, typer.Option(help="Domain of a folder dataset.")] = None,
) -> None:
    """Score every combination of --grid values; print the table and the best combination's --param flags."""
    from ..sweep import TunedOnTestWarning, best_flags, combinations, parse_grid, write_outputs
    from ..sweep import sweep as run_sweep

    values = parse_grid(grid)
    params = parse_params(param)
    combinations(method, values, params)  # every value is checked before any model loads
    check_device(device)
    selection = select_datasets(dataset, data_root, domain=domain)
    if len(selection.ready) != 1:
        raise InvalidInputError(f"--dataset must name one dataset for a sweep, got {len(selection.ready)}.")
    dataset_id = selection.ready[0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TunedOnTestWarning)
        table, timings = run_sweep(
            dataset_id, method, values, params=params, data_root=data_root, limit=limit, device=device
        )
    for warning in caught:
        err_console.print(
            f"[bold yellow]Warning:[/] {escape(str(warning.message))}", highlight=False, soft_wrap=True
        )
    paths = write_outputs(table, values, out, f"{method} on {dataset_id}: mSA per combination")
    shown = Table(*table.columns, title=f"{method} on {dataset_id}")
    for _, row in table.iterrows():
        shown.add_row(
            *(f"{row[c]:.4f}" if c in ("msa", "sa50", "sa75") else str(row[c]) for c in table.columns)
        )
    console.print(shown)
    console.print(
        f"shared stage {timings.get('shared', 0):.1f} s, per-combination work {timings.get('own', 0):.1f} s"
        f"; wrote {', '.join(str(p) for p in paths)}",
        highlight=False,
    )
    console.print(f"best: apgbench run --method {method} {best_flags(table, values)}", highlight=False)
