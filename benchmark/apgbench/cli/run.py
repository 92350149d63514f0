"""``apgbench run``: segment and score datasets x methods."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from .common import (
    DataRootOption,
    LimitOption,
    MethodsOption,
    ParamOption,
    ResultsRootOption,
    console,
    err_console,
    handle_errors,
    parse_params,
)
from .selection import check_device, check_params, select_datasets, select_methods

# Above this many pairs the closing summary has one row per method, so it stays on one screen.
SUMMARY_ROWS = 30


@handle_errors
def run(
    dataset: Annotated[
        str,
        typer.Option(
            "--dataset",
            "-d",
            help="Dataset id(s), comma-separated; 'all', 'builtin', a domain, or a folder of your images + labels.",
        ),
    ],
    method: MethodsOption,
    param: ParamOption = None,
    limit: LimitOption = None,
    force: Annotated[
        bool, typer.Option("--force/--no-force", help="Recompute and replace stored results.")
    ] = False,
    device: Annotated[str, typer.Option(help="Torch device: cpu, cuda, cuda:1, mps.")] = "cpu",
    fail_fast: Annotated[
        bool, typer.Option("--fail-fast/--no-fail-fast", help="Stop at the first failing image.")
    ] = False,
    image_timeout: Annotated[
        float | None,
        typer.Option(
            "--image-timeout",
            help="Seconds one image may take; a slower one is recorded as failed (default: no limit).",
            min=0.001,
        ),
    ] = None,
    tag: Annotated[
        str | None,
        typer.Option(
            help="Name for a run with non-default parameters: reports show method[tag] instead of a hash."
        ),
    ] = None,
    results_root: ResultsRootOption = None,
    data_root: DataRootOption = None,
    domain: Annotated[
        str | None,
        typer.Option(
            help="Domain of folder datasets (nuclei-fluo, cells-fluo, cells-labelfree, nuclei-histo)."
        ),
    ] = None,
    cache_embeddings: Annotated[
        bool,
        typer.Option(
            "--cache-embeddings/--no-cache-embeddings",
            help=(
                "Keep µSAM embeddings + decoder maps on disk: a re-run with other APG/AIS parameters skips "
                "the encoder."
            ),
        ),
    ] = False,
    cache_dir: Annotated[
        str | None, typer.Option(help="Folder of the embedding cache (default: <data root>/embedding-cache).")
    ] = None,
    cache_gb: Annotated[
        float,
        typer.Option(help="Size cap of the embedding cache in GB (least recently used evicted).", min=0.001),
    ] = 20.0,
) -> None:
    """Run methods on datasets; results are stored per image and a rerun resumes where it stopped."""
    from ..runner import run_many

    params = parse_params(param)
    method_ids = select_methods(
        method, console
    )  # every id, parameter and the device are checked before any work
    check_params(method_ids, params)
    check_device(device)
    selection = select_datasets(dataset, data_root, domain=domain)
    selection.print_missing(console)
    from ..config import data_root as _data_root
    from ..methods.embedding_cache import within_cache

    cache = (cache_dir or _data_root(data_root) / "embedding-cache") if cache_embeddings else None
    summaries = []
    for summary in within_cache(
        cache,
        cache_gb,
        run_many(
            selection.ready,
            method_ids,
            params=params,
            results_root=results_root,
            data_root=data_root,
            limit=limit,
            force=force,
            device=device,
            fail_fast=fail_fast,
            image_timeout=image_timeout,
            tag=tag,
        ),
    ):
        score = "n/a" if summary.mean_msa is None else f"{summary.mean_msa:.3f}"
        console.print(
            f"[bold]{summary.method}[/] on [bold]{summary.dataset}[/]: mSA {score} over {summary.n_images} "
            f"images ({summary.n_new} new, {summary.n_skipped} already stored, {summary.n_failed} failed) "
            f"-> {summary.directory}",
            highlight=False,
        )
        summaries.append(summary)
    print_summary(summaries)
    selection.print_missing(console)
    broken = [s for s in summaries if s.all_failed]
    if broken:
        for s in broken:
            err_console.print(
                f"[bold red]Error:[/] every image of {s.method} on {s.dataset} failed; first error: "
                f"{escape(s.first_error or '?')}",
                highlight=False,
                soft_wrap=True,
            )
        raise typer.Exit(1)
    console.print(
        "Next: `apgbench report` writes the tables, figures and HTML page of all stored results.",
        highlight=False,
    )


def print_summary(summaries: list) -> None:
    """One screen: per pair (or per method, for many pairs) images scored and failed, and the mean mSA."""
    if not summaries:
        return
    by_method = len(summaries) > SUMMARY_ROWS
    table = Table(
        "method",
        "datasets" if by_method else "dataset",
        "scored",
        "failed",
        "mean mSA",
        title="run summary" + (" (per method)" if by_method else ""),
    )
    groups: dict[tuple[str, str], list] = {}
    for s in summaries:
        label = s.method if s.tag is None else f"{s.method}[{s.tag}]"
        groups.setdefault((label, "" if by_method else s.dataset), []).append(s)
    for (label, dataset), group in groups.items():
        means = [s.mean_msa for s in group if s.mean_msa is not None]
        mean = f"{sum(means) / len(means):.3f}" if means else "n/a"
        failed = sum(s.n_failed_total for s in group)
        table.add_row(
            escape(label),
            str(len(group)) if by_method else dataset,
            str(sum(s.n_scored_total for s in group)),
            f"[red]{failed}[/]" if failed else "0",
            mean,
        )
    console.print(table)
