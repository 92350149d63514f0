"""Checks of what a command line selects (datasets, methods, parameters), done before any work starts.

Usage errors (a bad ``--param``, an empty selection) end with one red sentence and exit code 2, as click
does for its own usage errors; a selection of datasets of which some are not prepared yet runs the prepared
ones and lists the others with the command that prepares them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.markup import escape

from ..errors import NotFoundError
from .common import err_console

USAGE_ERROR = 2


def usage_error(message: str) -> NoReturn:
    """Print ``message`` as one red line and exit with code 2 (a usage error, nothing was done)."""
    err_console.print(f"[bold red]Error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(USAGE_ERROR)


@dataclass
class DatasetSelection:
    """The datasets a selection names: those ready to run and those still to prepare (id, command)."""

    ready: list[str]
    missing: list[tuple[str, str]] = field(default_factory=list)

    def print_missing(self, console) -> None:
        """List the datasets left out, each with the command that prepares it."""
        if not self.missing:
            return
        console.print(
            f"[yellow]{len(self.missing)} selected dataset(s) not prepared, left out:[/]", highlight=False
        )
        for dataset, command in self.missing:
            console.print(f"  {dataset}: {escape(command)}", highlight=False, soft_wrap=True)


def prepare_command(dataset: str) -> str:
    """The command that prepares a dataset (``download``, or ``import ... PATH`` for a manual one)."""
    from ..datasets import get_dataset_config

    config = get_dataset_config(dataset)
    return (
        f"apgbench datasets import {config.id} PATH"
        if config.manual
        else f"apgbench datasets download {config.id}"
    )


def select_datasets(
    text: str, data_root: str | os.PathLike | None = None, *, strict: bool = True, domain: str | None = None
) -> DatasetSelection:
    """Resolve a ``--dataset`` value and split it into prepared and unprepared datasets.

    Groups (``all``, a domain) keep their prepared datasets and list the rest; with ``strict`` a dataset
    named by its id must be prepared (else a :class:`~apgbench.datasets.DatasetNotPreparedError` naming all
    such ids) and a selection with nothing prepared is a usage error. An empty selection always is. A folder
    of your own images (``./my_data``, with ``domain``) is always ready: it is prepared when first loaded.
    """
    from ..config import split_ids
    from ..datasets import DatasetNotPreparedError, get_dataset_config, prepared_path, resolve_dataset_ids

    items = split_ids(text)
    if not items:
        usage_error(f"--dataset selects no dataset ({text!r}); give ids, a domain, 'builtin' or 'all'.")
    explicit: list[str] = []
    selection = DatasetSelection([])
    for item in items:
        for dataset in resolve_dataset_ids([item], domain=domain):
            config = get_dataset_config(dataset)
            if config.builtin or hasattr(config, "folder") or prepared_path(config, data_root).exists():
                selection.ready.append(dataset)
            elif dataset == item and strict:
                explicit.append(dataset)
            else:
                selection.missing.append((dataset, prepare_command(dataset)))
    if explicit:
        commands = "; ".join(f"`{prepare_command(d)}`" for d in explicit)
        raise DatasetNotPreparedError(f"Dataset(s) {', '.join(explicit)} not prepared: run {commands} first.")
    selection.ready = list(dict.fromkeys(selection.ready))
    selection.missing = [m for m in dict.fromkeys(selection.missing) if m[0] not in selection.ready]
    if not selection.ready and strict:
        commands = "; ".join(f"`{c}`" for _, c in selection.missing[:3])
        more = f" (and {len(selection.missing) - 3} more)" if len(selection.missing) > 3 else ""
        usage_error(
            f"None of the {len(selection.missing)} dataset(s) selected by {text!r} is prepared: "
            f"run {commands}{more}, or `apgbench datasets list` to see them."
        )
    return selection


def select_methods(text: str, console=None, *, ready_only: bool = True) -> list[str]:
    """Resolve a ``--method`` value into registered ids, ``all`` expanded (:func:`apgbench.plan.expand_methods`).

    With ``ready_only`` (``run``, ``submit``) a named method that cannot run here is an error, and ``all``
    keeps the methods that can, listing the others on ``console``. Unknown ids raise
    :class:`~apgbench.errors.UnknownIdError` with suggestions.
    """
    from ..config import split_ids
    from ..plan import expand_methods

    items = split_ids(text)
    if not items:
        usage_error(f"--method selects no method ({text!r}); give method ids, see `apgbench methods list`.")
    ids, skipped = expand_methods(items, ready_only=ready_only)
    for name, why in skipped if console is not None else ():
        console.print(f"[yellow]skipping {name}[/]: {escape(why)}", highlight=False, soft_wrap=True)
    return ids


def check_params(method_ids: Iterable[str], params: dict[str, Any]) -> None:
    """Type-check ``--param`` values against every selected method's defaults; exit 2 on the first error."""
    from ..methods import ParameterError, get_method
    from ..methods import check_params as check

    for method in method_ids:
        cls = get_method(method)
        try:
            check(cls.name, cls.default_params, params)
        except ParameterError as err:
            usage_error(str(err))


def parse_pairs(items: list[str] | None, flag: str) -> dict[str, Any]:
    """Parse repeatable ``key=value`` options (values read as YAML scalars); errors name ``flag``."""
    import yaml

    pairs: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            usage_error(f"{flag} expects key=value, got '{item}'.")
        try:
            pairs[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            usage_error(f"{flag} {item}: the value is not a valid YAML scalar.")
    return pairs


def check_report_selection(
    results_root: str | os.PathLike, domains: list[str], datasets: list[str], methods: list[str]
) -> None:
    """Refuse a missing results root and report filters that name nothing known, suggesting close names.

    Known are the four domains, the registered datasets and methods, and what the stored records name
    (``evaluate`` records, parameter variants and tags such as ``apg[lowthresh]``).
    """
    import difflib
    import json

    from ..config import DOMAINS
    from ..datasets import list_datasets
    from ..methods import available_methods
    from ..results import iter_records, record_label

    root = Path(results_root)
    if not root.is_dir():
        raise NotFoundError(
            f"Results root {root} does not exist; run `apgbench run` first, or pass "
            "--results-root (or set APGBENCH_RESULTS_DIR) to the folder holding results."
        )
    stored_datasets, stored_methods = set(), set()
    for directory in iter_records(root):
        try:
            info = json.loads((directory / "run.json").read_text())
        except (OSError, ValueError):
            continue  # the report lists unreadable records itself
        stored_datasets.add(info.get("dataset", directory.parent.name))
        stored_methods |= {
            info.get("method", ""),
            record_label(info.get("method", ""), info.get("run_key", ""), info.get("tag")),
        }
    known = {
        "--domain": set(DOMAINS),
        "--dataset": {c.id for c in list_datasets()} | stored_datasets,
        "--method": set(available_methods()) | stored_methods,
    }
    for flag, values in (("--domain", domains), ("--dataset", datasets), ("--method", methods)):
        for value in values:
            if value in known[flag]:
                continue
            close = difflib.get_close_matches(value, sorted(known[flag]), n=3, cutoff=0.5)
            hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            usage_error(f"{flag} '{value}' is not a known {flag[2:]}.{hint}")


def check_device(device: str) -> None:
    """Refuse a torch device this machine does not have (``cuda`` without CUDA, ``mps`` off macOS).

    torch is imported only for a non-CPU device, which only deep-learning methods use.
    """
    import re

    if device == "cpu":
        return
    if not re.fullmatch(r"cuda(:\d+)?|mps", device):
        usage_error(f"--device '{device}' is not one of cpu, cuda, cuda:N, mps.")
    try:
        import torch
    except ImportError:
        usage_error(f"--device {device} needs torch, which is not installed; use --device cpu.")
    if device == "mps":
        if not torch.backends.mps.is_available():
            usage_error("--device mps: this machine has no MPS (Apple GPU) device; use --device cpu.")
        return
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    index = int(device.partition(":")[2] or 0)
    if count == 0:
        usage_error(f"--device {device}: CUDA is not available on this machine; use --device cpu.")
    if index >= count:
        usage_error(
            f"--device {device}: this machine has {count} CUDA device(s) (cuda:0 ... cuda:{count - 1})."
        )
