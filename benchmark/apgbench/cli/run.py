"""``apgbench run``: segment and score datasets x methods."""

from __future__ import annotations

from typing import Annotated

import typer

from .common import DataRootOption, ResultsRootOption, console, handle_errors, parse_params


@handle_errors
def run(
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset id(s), comma-separated; 'all', 'builtin', a domain, or a folder of your images + labels.")],
    method: Annotated[str, typer.Option("--method", "-m", help="Method id(s), comma-separated.")],
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="Method parameter key=value (repeatable).")] = None,
    limit: Annotated[int | None, typer.Option(help="Score only the first N images (smoke run).", min=1)] = None,
    force: Annotated[bool, typer.Option("--force", help="Recompute and replace stored results.")] = False,
    device: Annotated[str, typer.Option(help="Torch device: cpu, cuda, cuda:1, mps.")] = "cpu",
    fail_fast: Annotated[bool, typer.Option("--fail-fast", help="Stop at the first failing image.")] = False,
    results_root: ResultsRootOption = None,
    data_root: DataRootOption = None,
    domain: Annotated[str | None, typer.Option(help="Domain of folder datasets (nuclei-fluo, cells-fluo, cells-labelfree, nuclei-histo).")] = None,
) -> None:
    """Run methods on datasets; results are stored per image and a rerun resumes where it stopped."""
    from ..config import split_ids
    from ..datasets import resolve_dataset_ids
    from ..methods import get_method
    from ..runner import run_many

    dataset_ids = resolve_dataset_ids(split_ids(dataset), domain=domain)
    method_ids = [get_method(m).name for m in split_ids(method)]  # validates every id before any work
    summaries = run_many(dataset_ids, method_ids, params=parse_params(param), results_root=results_root,
                         data_root=data_root, limit=limit, force=force, device=device, fail_fast=fail_fast)
    for summary in summaries:
        score = "n/a" if summary.mean_msa is None else f"{summary.mean_msa:.3f}"
        console.print(
            f"[bold]{summary.method}[/] on [bold]{summary.dataset}[/]: mSA {score} over {summary.n_images} "
            f"images ({summary.n_new} new, {summary.n_skipped} already stored, {summary.n_failed} failed) "
            f"-> {summary.directory}",
            highlight=False,
        )
