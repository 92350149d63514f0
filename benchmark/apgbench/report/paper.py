"""The paper's published mSA per (dataset, method), shipped as ``apgbench/data/paper_msa.csv``.

The CSV (36 datasets x 11 method settings, from the authors' public plotting code) holds several settings
for some methods. A result of ours is compared with the row of the paper
that used the same method with its default settings, which is what ``apgbench run`` runs without ``--param``.
Each method names that row in its metadata (``MethodMeta.paper_row``: paper ``method_id`` and ``setting``):
``amg`` -> (amg, "sam vit_b"), the original SAM ViT-B without grid search; ``ais``, ``apg``, ``apg-bd`` ->
their "default" rows (without grid search; APG's prompts from connected components, APG-bd's from
boundary-distance maxima); ``apg-ref`` -> APG's row, since micro-sam's own APG is what the paper ran;
``cellpose-sam`` -> "cpsam"; ``cellpose3`` -> "cyto3"; ``cellsam`` -> "default"; ``sam3`` -> 'text prompt "cell"'.

Not compared: runs with non-default parameters (their label carries ``[p-<hash>]``), the paper's grid-search
rows and its "AMG with the µSAM generalist" rows (no default run of ours corresponds to them), and methods the
paper did not evaluate (``sam2-amg``, ``classic``, user methods).

Dataset ids: our configs use kebab-case ids and may name the paper's id in ``paper_id``; without it the
paper id is our id with ``-`` replaced by ``_`` (``plantseg-root`` -> ``plantseg_root``).
"""

from __future__ import annotations

import functools
import html
from importlib import resources

import numpy as np
import pandas as pd


def paper_row(label: str) -> tuple[str, str] | None:
    """The paper's (method_id, setting) for a table label: its method's ``meta.paper_row``.

    None for variants (``apg[p-1a2b]``) and for methods the paper did not run or that are not registered here.
    """
    from ..methods import available_methods

    method = available_methods().get(label)
    return None if method is None else method.meta.paper_row


@functools.lru_cache(maxsize=1)
def load_paper_msa() -> pd.DataFrame:
    """The shipped paper table.

    Columns: domain, dataset_id, dataset_name, method_id, setting, paper_method_label, msa.
    """
    with resources.files("apgbench").joinpath("data/paper_msa.csv").open("r", encoding="utf-8") as handle:
        return pd.read_csv(handle)


def paper_dataset_id(dataset: str) -> str:
    """The paper's id of one of our datasets: the config's ``paper_id``, else ``-`` -> ``_``.

    Ids that are not in the registry (results of a removed config, a user's own dataset) use the rule.
    """
    try:
        from ..datasets import get_dataset_config

        config = get_dataset_config(dataset)
    except (KeyError, FileNotFoundError, ValueError):
        config = None
    if config is not None and config.paper_id:
        return config.paper_id
    return dataset.replace("-", "_")


def paper_value(dataset: str, label: str) -> float:
    """The paper's mSA for our (dataset id, method label), NaN where the paper has none."""
    row = paper_row(label)
    if row is None:
        return np.nan
    paper = load_paper_msa()
    hit = paper[
        (paper["dataset_id"] == paper_dataset_id(dataset))
        & (paper["method_id"] == row[0])
        & (paper["setting"] == row[1])
    ]
    return float(hit["msa"].iloc[0]) if len(hit) else np.nan


def paper_table(index: pd.MultiIndex | list[tuple[str, str]], labels: list[str]) -> pd.DataFrame:
    """The paper's values laid out like our mSA table: rows (domain, dataset), columns method labels."""
    frame = pd.DataFrame(
        index=pd.MultiIndex.from_tuples(list(index), names=["domain", "dataset"]),
        columns=list(labels),
        dtype=float,
    )
    for domain, dataset in frame.index:
        for label in labels:
            frame.loc[(domain, dataset), label] = paper_value(dataset, label)
    return frame


def paper_comparison(ours: pd.DataFrame, ci: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (domain, dataset, method) we have and the paper has: ours, paper, ours - paper.

    Parameters
    ----------
    ours : DataFrame
        Our mSA table (rows (domain, dataset), columns method labels).
    ci : DataFrame, optional
        Bootstrap intervals (columns domain, dataset, method, ci_low, ci_high); when given, a column
        ``paper_in_ci`` says whether the paper's value lies inside our 95% interval.
    """
    if ours.empty:
        return pd.DataFrame(columns=["domain", "dataset", "method", "ours", "paper", "difference"])
    paper = paper_table(ours.index, list(ours.columns))
    rows = []
    for (domain, dataset), values in ours.iterrows():
        for label, value in values.items():
            reference = paper.loc[(domain, dataset), label]
            if np.isnan(value) or np.isnan(reference):
                continue
            rows.append(
                {
                    "domain": domain,
                    "dataset": dataset,
                    "method": label,
                    "ours": value,
                    "paper": reference,
                    "difference": value - reference,
                }
            )
    frame = pd.DataFrame(rows, columns=["domain", "dataset", "method", "ours", "paper", "difference"])
    if ci is not None and not frame.empty:
        frame = frame.merge(
            ci[["domain", "dataset", "method", "ci_low", "ci_high"]],
            how="left",
            on=["domain", "dataset", "method"],
        )
        slack = 5e-4  # the paper's values are rounded to three decimals
        frame["paper_in_ci"] = (frame["paper"] >= frame["ci_low"] - slack) & (
            frame["paper"] <= frame["ci_high"] + slack
        )
    return frame


def paper_summary(comparison: pd.DataFrame) -> pd.DataFrame:
    """Per method: datasets compared, mean and mean absolute difference to the paper, share inside our CI."""
    if comparison.empty:
        return pd.DataFrame()
    grouped = comparison.groupby("method", sort=False)
    summary = pd.DataFrame(
        {
            "n_datasets": grouped.size(),
            "mean_difference": grouped["difference"].mean(),
            "mean_abs_difference": grouped["difference"].apply(lambda d: d.abs().mean()),
        }
    )
    if "paper_in_ci" in comparison.columns:
        summary["paper_in_ci"] = grouped["paper_in_ci"].mean()
    return summary


def difference_html(comparison: pd.DataFrame, *, tolerance: float = 0.02) -> str:
    """Ours - paper laid out like Fig. 2 (datasets x methods); beyond ``tolerance`` green (above) or red."""
    if comparison.empty:
        return "<p><em>No (dataset, method) pair of these results is in the paper.</em></p>"
    from .tables import order_methods

    methods = order_methods(comparison["method"].unique())
    head = "".join(f"<th>{html.escape(m)}</th>" for m in methods)
    rows = []
    for dataset, group in comparison.groupby("dataset", sort=False):
        values = group.set_index("method")
        cells = []
        for method in methods:
            if method not in values.index:
                cells.append("<td>–</td>")
                continue
            row = values.loc[method]
            css = ""
            if abs(row["difference"]) > tolerance:
                css = ' class="pos"' if row["difference"] > 0 else ' class="neg"'
            tip = f"ours {row['ours']:.3f}, paper {row['paper']:.3f}"
            text = f"{round(row['difference'], 3) + 0.0:+.3f}".replace("-", "−")  # + 0.0: no "−0.000"
            cells.append(f'<td{css} title="{tip}">{text}</td>')
        rows.append(f"<tr><td>{html.escape(str(dataset))}</td>{''.join(cells)}</tr>")
    return (
        f'<table class="paperdiff"><thead><tr><th>dataset</th>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )
