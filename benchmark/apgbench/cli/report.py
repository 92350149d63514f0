"""``apgbench report``: tables from whatever results exist."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import ResultsRootOption, console, handle_errors


@handle_errors
def report(
    results_root: ResultsRootOption = None,
    out: Annotated[Path | None, typer.Option("--out", help="Output folder [default: <results-root>/report].")] = None,
    domain: Annotated[str | None, typer.Option(help="Only these domains (comma-separated).")] = None,
    dataset: Annotated[str | None, typer.Option(help="Only these datasets (comma-separated).")] = None,
    method: Annotated[str | None, typer.Option(help="Only these methods (comma-separated).")] = None,
) -> None:
    """Write Fig. 2-style tables (Markdown, CSV) of mSA per dataset and method, and print them."""
    from ..config import results_root as resolve_root
    from ..config import split_ids
    from ..report import build_report

    root = resolve_root(results_root)
    result = build_report(root, out or root / "report", domains=split_ids(domain), datasets=split_ids(dataset),
                          methods=split_ids(method))
    console.print(result.terminal_table)
    for note in result.notes:
        console.print(f"[yellow]{note}[/]")
    console.print(f"Report written to {result.out}: " + ", ".join(p.name for p in result.files))
