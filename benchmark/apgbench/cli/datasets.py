"""``apgbench datasets ...``: list, inspect, download, import, export and verify the benchmark datasets.

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
from ..errors import InvalidInputError, UnavailableError
from .common import DataRootOption as DataRoot
from .common import console, err_console, handle_errors

app = typer.Typer(
    help="List, download, import, export and verify the benchmark datasets.", no_args_is_help=True
)


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

    table = Table(
        title=f"Datasets (cache: {_data_root(data_root)})",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    table.add_column("id", no_wrap=True)
    table.add_column("domain", no_wrap=True)
    for column in ("images", "size", "cached", "access"):
        table.add_column(column)
    for config in list_datasets():
        s = dataset_status(config, data_root)
        size = _size(s["bytes"]) if s["bytes"] else (s["size"] or "?")
        access = "built-in" if s["builtin"] else ("manual" if s["manual"] else "auto")
        table.add_row(
            config.id,
            config.domain,
            str(s["n_images"] or "?"),
            size,
            "[green]yes[/green]" if s["prepared"] else "no",
            access,
        )
    console.print(table)


@app.command("info")
@handle_errors
def info_command(
    dataset_id: Annotated[str, typer.Argument(help="Dataset id.")], data_root: DataRoot = None
) -> None:
    """Show one dataset's config: citation, licence, source, split rule, preparation."""
    from ..datasets.manage import dataset_status
    from ..methods import trained_on

    config = _config(dataset_id)
    status = dataset_status(config, data_root)
    console.print(f"[bold]{config.id}[/bold]: {config.name} ({config.domain})", highlight=False)
    rows = [
        ("citation", config.citation),
        ("licence", config.licence),
        ("source", config.source.kind),
        ("reader", config.format.reader),
        ("ndim", str(config.ndim)),
        ("split", f"{config.split.rule}: {config.split.description}"),
        ("preparation", config.preparation.model_dump_json(exclude_defaults=True)),
        ("trained on", ", ".join(trained_on(config.id)) or "-"),
        ("cached", str(status["prepared"])),
    ]
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
    mirror: Annotated[
        str | None,
        typer.Option(
            envvar="APGBENCH_MIRROR",
            help=("Mirror base URL: each file is fetched from MIRROR/<original host>/<original path>."),
        ),
    ] = None,
    force: Annotated[bool, typer.Option(help="Prepare again even if cached.")] = False,
    keep_extracted: Annotated[bool, typer.Option(help="Keep the unpacked files after preparation.")] = False,
) -> None:
    """Download, verify, unpack and prepare datasets (manual ones print what to do).

    When several datasets in a row cannot reach their servers (DNS failure, refused or unreachable
    connection), the machine is taken to be offline and the rest are not tried.
    """
    from ..config import split_ids
    from ..datasets import get_dataset_config, resolve_dataset_ids
    from ..datasets.download import ConnectError
    from ..datasets.manage import ManualDatasetError, download_dataset, is_prepared

    ids = resolve_dataset_ids(split_ids(dataset))
    failed: list[str] = []
    unreachable: list[ConnectError] = []  # consecutive datasets that never reached a server
    for index, dataset_id in enumerate(ids):
        config = get_dataset_config(dataset_id)
        cached = not config.manual and is_prepared(config, data_root) and not force
        try:
            path = download_dataset(
                config, data_root, mirror=mirror or "", force=force, keep_extracted=keep_extracted
            )
            console.print(f"[green]{dataset_id}[/green]: prepared at {path}", highlight=False)
            if not cached:
                unreachable.clear()
        except ManualDatasetError as err:
            err_console.print(
                f"[yellow]{dataset_id}[/yellow]: {escape(str(err))}", highlight=False, soft_wrap=True
            )
            failed.append(dataset_id)
        except (OSError, ValueError, RuntimeError) as err:
            hint = f" {config.source.instructions}" if config.source.instructions else ""
            err_console.print(
                f"[red]{dataset_id}[/red]: {escape(str(err))}{hint}", highlight=False, soft_wrap=True
            )
            failed.append(dataset_id)
            unreachable = [*unreachable, err] if isinstance(err, ConnectError) else []
            rest = ids[index + 1 :]
            if len(unreachable) >= OFFLINE_AFTER and rest:
                _offline_message(unreachable, rest, first=len(failed) == index + 1 == len(unreachable))
                failed.extend(rest)
                break
    if failed:
        if len(ids) > 1:
            err_console.print(f"Not prepared: {', '.join(failed)}.", highlight=False)
        raise typer.Exit(1)


#: Consecutive datasets failing to connect after which ``download`` takes the machine to be offline.
OFFLINE_AFTER = 3
_CAUSES = {
    "dns": "host names do not resolve",
    "refused": "connections are refused",
    "unreachable": "the network is unreachable",
    "connect-timeout": "connections time out",
}


def _offline_message(errors, rest: list[str], *, first: bool) -> None:
    causes = " and ".join(dict.fromkeys(_CAUSES[e.kind] for e in errors))
    which = "first" if first else "last"
    err_console.print(
        f"[bold red]Stopped:[/] the {which} {len(errors)} datasets could not reach their servers ({causes}): "
        f"this machine seems offline, so the remaining {len(rest)} were not tried. Check the network or "
        "proxy, or pass --mirror, then run the command again (prepared datasets are kept).",
        highlight=False,
        soft_wrap=True,
    )


@app.command("import")
@handle_errors
def import_command(
    dataset_id: Annotated[str, typer.Argument(help="Dataset id.")],
    path: Annotated[Path, typer.Argument(help="The file you downloaded, or a folder holding it.")],
    data_root: DataRoot = None,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify/--no-verify",
            help=("Check the file's sha256; --no-verify accepts a different copy with a warning."),
        ),
    ] = True,
    keep_extracted: Annotated[bool, typer.Option(help="Keep the unpacked files after preparation.")] = False,
) -> None:
    """Verify and prepare a dataset from a file you obtained yourself."""
    import warnings

    from ..datasets.manage import import_dataset

    config = _config(dataset_id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # printed below from the notes
        try:
            out, notes = import_dataset(config, path, data_root, verify=verify, keep_extracted=keep_extracted)
        except OSError as err:
            if isinstance(err, FileNotFoundError):
                raise
            # e.g. a full disk: the staged copy was dropped, the old one is untouched
            raise UnavailableError(
                f"Importing {dataset_id} failed: {err}; the cached copy was left as it was."
            ) from err
    for note in notes:
        err_console.print(f"[yellow]Warning:[/yellow] {escape(note)}", highlight=False, soft_wrap=True)
    console.print(f"[green]{dataset_id}[/green]: prepared at {out}", highlight=False)


@app.command("export")
@handle_errors
def export_command(
    dataset_id: Annotated[str, typer.Argument(help="Dataset id (prepared, or built in).")],
    out_dir: Annotated[
        Path, typer.Argument(help="Folder to write images/<id>.tif and labels/<id>.tif into.")
    ],
    data_root: DataRoot = None,
    force: Annotated[
        bool, typer.Option("--force/--no-force", help="Overwrite existing files of the same names.")
    ] = False,
) -> None:
    """Write a prepared test split as TIFF files, for segmenting it with any tool and scoring with evaluate."""
    from ..datasets.export import export_dataset

    config = _config(dataset_id)
    try:
        summary = export_dataset(config, out_dir, data_root, force=force)
    except FileExistsError as err:
        raise InvalidInputError(str(err)) from err  # one sentence through handle_errors
    console.print(
        f"[green]{dataset_id}[/green]: wrote {summary.n_images} images to {summary.images} and their "
        f"labels to {summary.labels}.",
        highlight=False,
        soft_wrap=True,
    )
    console.print(
        f"Segment the images with your tool into a folder PRED (one label image per image, same name), "
        f"then: apgbench evaluate --dataset {dataset_id} --predictions PRED --name TOOL",
        highlight=False,
        soft_wrap=True,
    )


@app.command("prepare")
@handle_errors
def prepare_command(
    dataset_id: Annotated[str, typer.Argument(help="Dataset id.")],
    variant: Annotated[
        str | None,
        typer.Option(
            help=(
                "A documented variant, e.g. 'corrected' (stored as dataset '<id>@<variant>'; see docs/fidelity.md)."
            )
        ),
    ] = None,
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
        err_console.print(
            f"[bold red]Error:[/] {bad} file(s) failed verification: run `apgbench datasets "
            "download ID --force` or import them again.",
            highlight=False,
        )
        raise typer.Exit(1)
