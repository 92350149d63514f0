"""Fig. 2-style tables: mean segmentation accuracy per dataset (rows, grouped by domain) and method (columns)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

DOMAIN_ORDER = ("nuclei-fluo", "cells-fluo", "cells-labelfree", "nuclei-histo")
DOMAIN_TITLES = {
    "nuclei-fluo": "Nuclei (fluorescence)",
    "cells-fluo": "Cells (fluorescence)",
    "cells-labelfree": "Cells (label-free)",
    "nuclei-histo": "Nuclei (histopathology)",
}
MARKS = {1: "¹", 2: "²", 3: "³"}


def scorable(scores: pd.DataFrame) -> pd.DataFrame:
    """Rows that enter a dataset mean: no error and non-empty ground truth (the paper drops empty images)."""
    empty = scores["error"].isna() & (scores["n_true"] == 0)
    if empty.any():
        warnings.warn(f"{int(empty.sum())} image(s) with empty ground truth are excluded from the means.",
                      stacklevel=2)
    return scores[scores["error"].isna() & (scores["n_true"] > 0)]


def msa_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean mSA per (domain, dataset) x method label, rows ordered by domain then dataset."""
    valid = scorable(scores)
    if valid.empty:
        return pd.DataFrame()
    table = valid.pivot_table(index=["domain", "dataset"], columns="label", values="msa", aggfunc="mean")
    order = sorted(table.index, key=lambda k: (DOMAIN_ORDER.index(k[0]) if k[0] in DOMAIN_ORDER else 99, k[1]))
    return table.loc[order].sort_index(axis=1)


def ranks(table: pd.DataFrame) -> pd.DataFrame:
    """Rank of each method per dataset (1 = best; ties share the best rank; missing values stay NaN)."""
    return table.rank(axis=1, ascending=False, method="min")


def format_markdown(table: pd.DataFrame, *, digits: int = 3) -> str:
    """Markdown table with one section per domain; the top three per dataset carry ¹ ² ³ and the best is bold."""
    if table.empty:
        return "_No results yet._\n"
    rank = ranks(table)
    methods = list(table.columns)
    lines = ["| domain | dataset | " + " | ".join(methods) + " |", "|---|---|" + "---:|" * len(methods)]
    for domain, dataset in table.index:
        cells = []
        for method in methods:
            value, r = table.loc[(domain, dataset), method], rank.loc[(domain, dataset), method]
            if np.isnan(value):
                cells.append("–")
                continue
            text = f"{value:.{digits}f}{MARKS.get(int(r), '')}"
            cells.append(f"**{text}**" if r == 1 else text)
        lines.append(f"| {DOMAIN_TITLES.get(domain, domain)} | {dataset} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def long_summary(scores: pd.DataFrame) -> pd.DataFrame:
    """One row per (domain, dataset, method label): mSA, images scored, failures, seconds per image."""
    valid = scorable(scores)
    grouped = valid.groupby(["domain", "dataset", "label"])
    summary = grouped.agg(msa=("msa", "mean"), n_images=("msa", "size"), seconds_per_image=("seconds", "mean"))
    failed = scores[scores["error"].notna()].groupby(["domain", "dataset", "label"]).size().rename("n_failed")
    summary = summary.join(failed, how="outer").fillna({"n_failed": 0, "n_images": 0})
    summary["n_failed"] = summary["n_failed"].astype(int)
    summary["n_images"] = summary["n_images"].astype(int)
    return summary.reset_index()
