"""``apgbench evaluate``: score label images made by any other tool."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import DataRootOption, ResultsRootOption, console, handle_errors


@handle_errors
def evaluate(
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset id the predictions belong to.")],
    predictions: Annotated[
        Path,
        typer.Option(
            help="Folder of label images: <image_id>.tif/.png/.npy or with a tool's suffix (_cp_masks, _seg.npy, "
            "_masks, _label(s), ...; see apgbench.label_files)."
        ),
    ],
    name: Annotated[str, typer.Option(help="Method name to store them under (kebab-case).")],
    force: Annotated[
        bool, typer.Option("--force/--no-force", help="Replace stored results of this name.")
    ] = False,
    results_root: ResultsRootOption = None,
    data_root: DataRootOption = None,
) -> None:
    """Score a folder of label images against a dataset's ground truth and store them as method NAME."""
    from ..evaluate import evaluate_predictions

    summary = evaluate_predictions(
        dataset, predictions, name, results_root=results_root, data_root=data_root, force=force
    )
    score = "n/a" if summary.mean_msa is None else f"{summary.mean_msa:.3f}"
    console.print(
        f"[bold]{name}[/] on [bold]{dataset}[/]: mSA {score} over {summary.n_images} images "
        f"({summary.n_failed} without a usable prediction, counted as 0) -> {summary.directory}",
        highlight=False,
    )
