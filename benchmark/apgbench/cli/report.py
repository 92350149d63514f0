"""``apgbench report``: the paper's tables and figures, and more, from whatever results exist."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ..errors import InvalidInputError
from .common import DataRootOption, ResultsRootOption, console, handle_errors
from .selection import check_report_selection


@handle_errors
def report(
    results_root: ResultsRootOption = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Output folder (default: <results-root>/report).")
    ] = None,
    domain: Annotated[str | None, typer.Option(help="Only these domains (comma-separated).")] = None,
    dataset: Annotated[str | None, typer.Option(help="Only these datasets (comma-separated).")] = None,
    method: Annotated[
        str | None, typer.Option(help="Only these methods (comma-separated ids or labels).")
    ] = None,
    compare: Annotated[
        str | None,
        typer.Option(
            help="Two methods for the paired test, e.g. 'apg,ais' (default: apg,ais when both ran)."
        ),
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", help="Outputs to write, comma-separated: md, csv, tex, png, svg, html.")
    ] = "md,csv,tex,png,svg,html",
    images: Annotated[
        str | None,
        typer.Option(
            help="Images for the qualitative figure: 'dataset:image_id' or 'dataset', comma-separated "
            "(default: one per domain)."
        ),
    ] = None,
    data_root: DataRootOption = None,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap intervals.")] = 0,
    fingerprint: Annotated[
        list[str] | None,
        typer.Option(
            help="DATASET=PREFIX: use the records made on this version of the dataset's prepared data "
            "(where records of several versions exist). Repeatable."
        ),
    ] = None,
    exclude_failed: Annotated[
        bool,
        typer.Option(
            "--exclude-failed/--count-failed",
            help="Leave failed and never-run images out of the means (default: they count as 0, marked *).",
        ),
    ] = False,
) -> None:
    """Write Fig. 1b/2/3-style tables and plots, the paper comparison, statistics and an HTML page."""
    from ..config import results_root as resolve_root
    from ..config import split_ids
    from ..report import build_report
    from ..results.schema import store_write_errors

    pair = None
    if compare is not None:
        ids = split_ids(compare)
        if len(ids) != 2 or ids[0] == ids[1]:
            raise InvalidInputError(
                f"--compare expects two different methods, e.g. 'apg,ais'; got '{compare}'."
            )
        pair = (ids[0], ids[1])
    fingerprints = {}
    for item in fingerprint or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise InvalidInputError(f"--fingerprint expects DATASET=PREFIX, got '{item}'.")
        fingerprints[key.strip()] = value.strip()
    root = resolve_root(results_root)
    check_report_selection(root, split_ids(domain), split_ids(dataset), split_ids(method))
    target = out or root / "report"
    with store_write_errors(target):  # a full or read-only output folder: one sentence naming it
        result = build_report(
            root,
            target,
            domains=split_ids(domain),
            datasets=split_ids(dataset),
            methods=split_ids(method),
            compare=pair,
            formats=split_ids(fmt),
            images=split_ids(images),
            data_root=data_root,
            seed=seed,
            fingerprints=fingerprints or None,
            exclude_failed=exclude_failed,
        )
    console.print(result.terminal_table)
    for note in result.notes:
        console.print(f"[yellow]{escape(note)}[/]", highlight=False)
    console.print(
        f"Report written to {result.out} ({len(result.files)} files)"
        + (f"; open {result.html} in a browser." if result.html else "."),
        highlight=False,
    )
