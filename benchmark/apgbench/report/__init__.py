"""Reports built from the results store: tables now, plots and an HTML page from :mod:`apgbench.report`."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from rich.table import Table

from ..results import load_scores
from .tables import DOMAIN_TITLES, format_markdown, long_summary, msa_table, ranks

__all__ = ["ReportResult", "build_report", "load_filtered_scores"]


@dataclass
class ReportResult:
    """What :func:`build_report` wrote and what it wants to tell the user."""

    out: Path
    files: list[Path]
    table: pd.DataFrame
    terminal_table: Table
    notes: list[str] = field(default_factory=list)


def load_filtered_scores(results_root: str | os.PathLike, *, domains=(), datasets=(), methods=()) -> pd.DataFrame:
    """Per-image scores under ``results_root`` restricted to the given domains, datasets and methods."""
    scores = load_scores(results_root)
    for column, allowed in (("domain", domains), ("dataset", datasets), ("method", methods)):
        if allowed:
            scores = scores[scores[column].isin(list(allowed))]
    return scores


def build_report(results_root: str | os.PathLike, out: str | os.PathLike, *, domains=(), datasets=(),
                 methods=()) -> ReportResult:
    """Write ``msa_table.md``, ``msa_table.csv`` and ``summary.csv`` to ``out`` from the stored results.

    A report on partial results says what is missing (pairs never run, failed images) instead of failing.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    scores = load_filtered_scores(results_root, domains=domains, datasets=datasets, methods=methods)
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = msa_table(scores)
        summary = long_summary(scores) if not scores.empty else pd.DataFrame()
    notes.extend(str(w.message) for w in caught)
    if scores.empty:
        notes.append(f"No results found under {results_root}; run `apgbench run` first.")
    else:
        missing = int(table.isna().sum().sum())
        if missing:
            notes.append(f"{missing} (dataset, method) pair(s) have no results yet (shown as '–').")
        n_failed = int(scores["error"].notna().sum())
        if n_failed:
            notes.append(f"{n_failed} image(s) failed; see summary.csv for the counts per pair.")

    files = [out / "msa_table.md", out / "msa_table.csv", out / "summary.csv"]
    files[0].write_text("# Mean segmentation accuracy (mSA)\n\n" + format_markdown(table), encoding="utf-8")
    table.to_csv(files[1], float_format="%.4f")
    summary.to_csv(files[2], index=False, float_format="%.4f")
    return ReportResult(out, files, table, _terminal_table(table), notes)


def _terminal_table(table: pd.DataFrame) -> Table:
    rich_table = Table(title="Mean segmentation accuracy (mSA); ¹²³ = top three per dataset")
    rich_table.add_column("domain")
    rich_table.add_column("dataset")
    if table.empty:
        return rich_table
    rank = ranks(table)
    for method in table.columns:
        rich_table.add_column(method, justify="right")
    for domain, dataset in table.index:
        cells = []
        for method in table.columns:
            value, r = table.loc[(domain, dataset), method], rank.loc[(domain, dataset), method]
            if pd.isna(value):
                cells.append("–")
            else:
                style = {1: "bold green", 2: "green", 3: "cyan"}.get(int(r))
                text = f"{value:.3f}"
                cells.append(f"[{style}]{text}[/]" if style else text)
        rich_table.add_row(DOMAIN_TITLES.get(domain, domain), dataset, *cells)
    return rich_table
