"""``apgbench datasets ...``: list, inspect, download, import and verify the benchmark datasets.

Thin layer: the work happens in :mod:`apgbench.datasets.manage`; here we parse, print and map errors to one
sentence and exit code 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from ..config import data_root as _data_root
from .common import DataRootOption as DataRoot
from .common import console, err_console, handle_errors

app = typer.Typer(help="List, download, import and verify the benchmark datasets.", no_args_is_help=True)


def _config(dataset_id: str):
    from ..datasets import get_dataset_config

    return get_dataset_config(dataset_id)  # KeyError -> one sentence via handle_errors


def _size(n_bytes: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n_bytes < 1024 or unit == "GB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024
    return ""


@app.command("list")
@handle_errors
def list_command(data_root: DataRoot = None) -> None:
    """Show every dataset with its domain, image count, size and cache status."""
    from ..datasets import list_datasets
    from ..datasets.manage import dataset_status

    table = Table(title=f"Datasets (cache: {_data_root(data_root)})", box=box.SIMPLE_HEAD,
                  pad_edge=False, collapse_padding=True)
    table.add_column("id", no_wrap=True)
    table.add_column("domain", no_wrap=True)
    for column in ("images", "size", "cached", "access"):
        table.add_column(column)
    for config in list_datasets():
        s = dataset_status(config, data_root)
        size = _size(s["bytes"]) if s["bytes"] else (s["size"] or "?")
        access = "built-in" if s["builtin"] else ("manual" if s["manual"] else "auto")
        table.add_row(config.id, config.domain, str(s["n_images"] or "?"), size,
                      "[green]yes[/green]" if s["prepared"] else "no", access)
    console.print(table)


@app.command("info")
@handle_errors
def info_command(dataset_id: Annotated[str, typer.Argument(help="Dataset id.")], data_root: DataRoot = None) -> None:
    """Show one dataset's config: citation, licence, source, split rule, preparation."""
    from ..datasets.manage import dataset_status

    config = _config(dataset_id)
    status = dataset_status(config, data_root)
    console.print(f"[bold]{config.id}[/bold]: {config.name} ({config.domain})", highlight=False)
    rows = [("citation", config.citation), ("licence", config.licence), ("source", config.source.kind),
            ("reader", config.format.reader), ("ndim", str(config.ndim)),
            ("split", f"{config.split.rule}: {config.split.description}"),
            ("preparation", config.preparation.model_dump_json(exclude_defaults=True)),
            ("trained on", ", ".join(config.trained_on) or "-"), ("cached", str(status["prepared"]))]
    if config.split.rule == "seeded-random":
        rows.append(("seed", f"{config.split.seed} (the paper's split was random without a seed)"))
    for f in config.source.files:
        rows.append(("file", f"{f.filename} <- {f.url} (sha256 {f.sha256 or 'not published'})"))
    if config.manual:
        from ..datasets.manage import manual_instructions

        rows.append(("how to get it", manual_instructions(config)))
    for name, variant in config.variants.items():
        command = f"apgbench datasets prepare {config.id} --variant {name}"
        rows.append(("variant", f"{config.id}@{name}: {variant.description} (`{command}`)"))
    if config.notes:
        rows.append(("notes", config.notes))
    for key, value in rows:
        console.print(f"  [cyan]{key}[/cyan]: {value}", highlight=False, soft_wrap=True)


@app.command("download")
@handle_errors
def download_command(
    dataset: Annotated[str, typer.Argument(help="Dataset id, comma-separated ids, a domain, or 'all'.")],
    data_root: DataRoot = None,
    mirror: Annotated[str | None, typer.Option(envvar="APGBENCH_MIRROR", help=(
        "Mirror base URL: each file is fetched from MIRROR/<original host>/<original path>."))] = None,
    force: Annotated[bool, typer.Option(help="Prepare again even if cached.")] = False,
    keep_extracted: Annotated[bool, typer.Option(help="Keep the unpacked files after preparation.")] = False,
) -> None:
    """Download, verify, unpack and prepare datasets (manual ones print what to do)."""
    from ..config import split_ids
    from ..datasets import get_dataset_config, resolve_dataset_ids
    from ..datasets.manage import ManualDatasetError, download_dataset

    ids = resolve_dataset_ids(split_ids(dataset))
    failed: list[str] = []
    for dataset_id in ids:
        config = get_dataset_config(dataset_id)
        try:
            path = download_dataset(config, data_root, mirror=mirror or "", force=force,
                                    keep_extracted=keep_extracted)
            console.print(f"[green]{dataset_id}[/green]: prepared at {path}", highlight=False)
        except ManualDatasetError as err:
            err_console.print(f"[yellow]{dataset_id}[/yellow]: {escape(str(err))}", highlight=False, soft_wrap=True)
            failed.append(dataset_id)
        except (OSError, ValueError, RuntimeError) as err:
            hint = f" {config.source.instructions}" if config.source.instructions else ""
            err_console.print(f"[red]{dataset_id}[/red]: {escape(str(err))}{hint}", highlight=False, soft_wrap=True)
            failed.append(dataset_id)
    if failed:
        if len(ids) > 1:
            err_console.print(f"Not prepared: {', '.join(failed)}.", highlight=False)
        raise typer.Exit(1)


@app.command("import")
@handle_errors
def import_command(
    dataset_id: Annotated[str, typer.Argument(help="Dataset id.")],
    path: Annotated[Path, typer.Argument(help="The file you downloaded, or a folder holding it.")],
    data_root: DataRoot = None,
    verify: Annotated[bool, typer.Option("--verify/--no-verify", help=(
        "Check the file's sha256; --no-verify accepts a different copy with a warning."))] = True,
    keep_extracted: Annotated[bool, typer.Option(help="Keep the unpacked files after preparation.")] = False,
) -> None:
    """Verify and prepare a dataset from a file you obtained yourself."""
    import warnings

    from ..datasets.manage import import_dataset

    config = _config(dataset_id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # printed below from the notes
        out, notes = import_dataset(config, path, data_root, verify=verify, keep_extracted=keep_extracted)
    for note in notes:
        err_console.print(f"[yellow]Warning:[/yellow] {escape(note)}", highlight=False, soft_wrap=True)
    console.print(f"[green]{dataset_id}[/green]: prepared at {out}", highlight=False)


@app.command("prepare")
@handle_errors
def prepare_command(
    dataset_id: Annotated[str, typer.Argument(help="Dataset id.")],
    variant: Annotated[str | None, typer.Option(help=(
        "A documented variant, e.g. 'corrected' (stored as dataset '<id>@<variant>'; see docs/fidelity.md)."))] = None,
    data_root: DataRoot = None,
    keep_extracted: Annotated[bool, typer.Option(help="Keep the unpacked files after preparation.")] = False,
) -> None:
    """Prepare a dataset's test split (or a variant of it) again from its cached download."""
    from ..datasets.manage import prepare_cached

    config = _config(f"{dataset_id}@{variant}" if variant else dataset_id)
    out = prepare_cached(config, data_root, keep_extracted=keep_extracted)
    console.print(f"[green]{config.id}[/green]: prepared at {out}", highlight=False)


@app.command("verify")
@handle_errors
def verify_command(
    dataset: Annotated[str, typer.Argument(help="Dataset id(s), a domain, or 'all'.")] = "all",
    data_root: DataRoot = None,
) -> None:
    """Re-hash cached raw files and prepared test splits against the recorded checksums."""
    from ..config import split_ids
    from ..datasets import get_dataset_config, resolve_dataset_ids
    from ..datasets.manage import verify_dataset

    ids = resolve_dataset_ids(split_ids(dataset))
    table = Table(title="Verification")
    for column in ("dataset", "file", "status", "detail"):
        table.add_column(column)
    bad = 0
    for dataset_id in ids:
        for name, ok, message in verify_dataset(get_dataset_config(dataset_id), data_root):
            bad += not ok
            table.add_row(dataset_id, name, "[green]ok[/green]" if ok else "[red]FAILED[/red]", message)
    if table.row_count == 0:
        console.print("Nothing cached to verify.")
        return
    console.print(table)
    if bad:
        err_console.print(f"[bold red]Error:[/] {bad} file(s) failed verification: run `apgbench datasets "
                          "download ID --force` or import them again.", highlight=False)
        raise typer.Exit(1)
