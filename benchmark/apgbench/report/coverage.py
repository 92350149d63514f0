"""What a report on partial results lacks: pairs never run, records not complete, images that failed."""

from __future__ import annotations

import json
import os

import pandas as pd

from ..results import iter_records, record_label, valid_scores
from .tables import domain_key, order_methods


def coverage_table(results_root: str | os.PathLike, scores: pd.DataFrame) -> pd.DataFrame:
    """One row per record in ``scores``: images in the test split, scored, failed, empty ground truth, complete.

    ``n_expected`` comes from the record's ``run.json`` (the size of the dataset's test split when it ran).
    """
    columns = ["domain", "dataset", "method", "n_expected", "n_scored", "n_failed", "n_empty_gt", "complete"]
    if scores.empty:
        return pd.DataFrame(columns=columns)
    infos = {}
    for directory in iter_records(results_root):
        try:
            info = json.loads((directory / "run.json").read_text())
            key = (info["dataset"], record_label(info["method"], info["run_key"], info.get("tag")))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # unreadable: load_scores names it with its repair
        infos[key] = info
    rows = []
    for (domain, dataset, label), group in scores.groupby(["domain", "dataset", "label"], sort=False):
        info = infos.get((dataset, label), {})
        failed = group["error"].notna()
        valid = valid_scores(group)
        n_expected = int(info.get("n_images") or len(group))
        rows.append(
            {
                "domain": domain,
                "dataset": dataset,
                "method": label,
                "n_expected": n_expected,
                "n_scored": len(valid),
                "n_failed": int(failed.sum()),
                "n_empty_gt": int((~failed & (group["n_true"] == 0)).sum()),
                "complete": bool(info.get("complete", False)) and len(group) >= n_expected,
            }
        )
    frame = pd.DataFrame(rows, columns=columns)
    order = order_methods(frame["method"].unique())
    frame["_d"] = frame["domain"].map(domain_key)
    frame["_m"] = frame["method"].map(order.index)
    return (
        frame.sort_values(["_d", "domain", "dataset", "_m"]).drop(columns=["_d", "_m"]).reset_index(drop=True)
    )


def missing_notes(
    table: pd.DataFrame,
    coverage: pd.DataFrame,
    *,
    requested: dict[str, tuple] | None = None,
    scores: pd.DataFrame | None = None,
    exclude_failed: bool = False,
) -> list[str]:
    """Sentences naming what is missing, for the terminal and the page.

    Parameters
    ----------
    table : DataFrame
        The mSA table (NaN where a method has no result on a dataset).
    coverage : DataFrame
        From :func:`coverage_table`.
    requested : dict, optional
        The filters (``{"dataset": (...), "method": (...), "domain": (...)}``); requested ids without any
        result are named.
    scores : DataFrame, optional
        The filtered scores, to check the requested ids against.
    exclude_failed : bool
        Whether the means leave failed and missing images out (else they count as 0).
    """
    effect = "excluded from the mean" if exclude_failed else "counted as 0 in the mean"
    notes = []
    if requested and scores is not None:
        for column, wanted in requested.items():
            absent = [
                w
                for w in wanted
                if w not in set(scores[column if column != "method" else "label"])
                and not (column == "method" and w in set(scores["method"]))
            ]
            if absent:
                notes.append(f"No results for {column} {', '.join(absent)}.")
    if not table.empty:
        never = [
            f"{label} on {dataset}"
            for (_, dataset), row in table.iterrows()
            for label, v in row.items()
            if pd.isna(v)
        ]
        if never:
            shown = ", ".join(never[:12]) + (f" and {len(never) - 12} more" if len(never) > 12 else "")
            notes.append(
                f"{len(never)} (dataset, method) pair(s) have no results yet (shown as '–'): {shown}."
            )
    if not coverage.empty:
        partial = coverage[~coverage["complete"]]
        for row in partial.head(8).itertuples():
            done = row.n_scored + row.n_failed + row.n_empty_gt
            notes.append(
                f"{row.method} on {row.dataset} is incomplete: {done} of {row.n_expected} images done "
                f"(the others are {effect})."
            )
        if len(partial) > 8:
            notes.append(f"... and {len(partial) - 8} more incomplete records (see coverage.csv).")
        failed = coverage[coverage["n_failed"] > 0]
        for row in failed.head(8).itertuples():
            notes.append(f"{row.method} on {row.dataset}: {row.n_failed} image(s) failed ({effect}).")
        if len(failed) > 8:
            notes.append(f"... and {len(failed) - 8} more records with failed images (see coverage.csv).")
    return notes
