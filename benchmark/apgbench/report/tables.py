"""Fig. 2-style tables: mean segmentation accuracy per dataset (rows, grouped by domain) and method (columns).

Marks: the top three methods per dataset carry ¹ ² ³ (the best is bold); ``†`` marks a method whose training
data include the dataset's training split (``trained_on`` in the method's metadata); the last column is the
difference APG - AIS where both ran. Column order: the methods' ``table_order`` (the paper's order).
"""

from __future__ import annotations

import html
import warnings

import numpy as np
import pandas as pd

from ..config import DOMAINS
from ..methods import available_methods, method_order
from ..results import THRESHOLD_COLUMNS, valid_scores
from .formats import latex_escape

DOMAIN_ORDER = DOMAINS  # tables list the domains in the order apgbench.config defines them
DOMAIN_TITLES = {
    "nuclei-fluo": "Nuclei (fluorescence)",
    "cells-fluo": "Cells (fluorescence)",
    "cells-labelfree": "Cells (label-free)",
    "nuclei-histo": "Nuclei (histopathology)",
}
MARKS = {1: "¹", 2: "²", 3: "³"}
TRAINED = "†"
DIFF_COLUMN = "APG − AIS"
FAILED_MARK = "*"  # a mean that counts failed or missing images as 0
MISSING_ERROR = "not scored (missing from the record)"


def base_method(label: str) -> str:
    """The method id of a table label (``apg[p-1a2b]`` -> ``apg``)."""
    return label.split("[", 1)[0]


def order_methods(labels) -> list[str]:
    """Labels in the methods' table order; variants after their method, methods without an order last, by id.

    The order is :func:`~apgbench.methods.method_order` (each method's ``meta.table_order``).
    """
    order = method_order()

    def key(label: str):
        base = base_method(label)
        position = order.index(base) if base in order else len(order)
        return position, base, label != base, label

    return sorted(labels, key=key)


def domain_key(domain: str) -> int:
    """Sort key putting the paper's domains first, in the paper's order."""
    return DOMAIN_ORDER.index(domain) if domain in DOMAIN_ORDER else len(DOMAIN_ORDER)


def _empty_ground_truth(scores: pd.DataFrame) -> set[tuple[str, str]]:
    """(dataset, image id) of the images whose ground truth is empty, as any record of the dataset saw it."""
    n_true = pd.to_numeric(scores["n_true"], errors="coerce")
    empty = scores[n_true == 0]
    return set(zip(empty["dataset"], empty["image_id"]))


def scorable(scores: pd.DataFrame) -> pd.DataFrame:
    """Rows that a method scored: no error and non-empty ground truth (the ``--exclude-failed`` view)."""
    empty = scores["error"].isna() & (scores["n_true"] == 0)
    if empty.any():
        warnings.warn(
            f"{int(empty.sum())} image(s) with empty ground truth are excluded from the means.", stacklevel=2
        )
    return valid_scores(scores)


def counted_scores(scores: pd.DataFrame, *, exclude_failed: bool = False) -> pd.DataFrame:
    """The rows that enter the dataset means, one per (record, test image), with a ``zeroed`` column.

    A dataset's mean is over all its test images, except those with empty ground truth (the paper drops
    them). An image that failed, or that the record never scored (``n_expected`` from ``run.json`` minus the
    rows stored), scores 0 at every threshold, like an empty prediction, and has ``zeroed`` True. A missing
    image takes its id from another record of the dataset where one has it (so paired comparisons line up),
    else a placeholder ``<missing-<label>-k>``; a missing image whose ground truth no record saw counts even if it
    was empty, so a shortfall never makes a score look better.

    With ``exclude_failed`` the failed and missing images are left out instead (means over the images scored).
    """
    empty_ids = _empty_ground_truth(scores)
    if empty_ids:
        warnings.warn(
            f"{len(empty_ids)} image(s) with empty ground truth are excluded from the means.", stacklevel=2
        )
    keep = pd.Series(
        [key not in empty_ids for key in zip(scores["dataset"], scores["image_id"])],
        index=scores.index,
        dtype=bool,
    )
    rows = scores[keep].copy()
    if exclude_failed:
        return rows[rows["error"].isna()].assign(zeroed=False)
    failed = rows["error"].notna()
    rows.loc[failed, ["msa", *THRESHOLD_COLUMNS]] = 0.0
    rows["zeroed"] = failed
    if rows.empty or "n_expected" not in scores.columns:
        return rows
    known = scores.groupby("dataset")["image_id"].agg(lambda ids: sorted(set(ids)))
    extra = []
    for (dataset, label), group in scores.groupby(["dataset", "label"], sort=False):
        present = set(group["image_id"])
        n_missing = int(group["n_expected"].iloc[0]) - len(present)
        if n_missing <= 0:
            continue
        others = [i for i in known[dataset] if i not in present][:n_missing]
        ids = [i for i in others if (dataset, i) not in empty_ids]
        # placeholders name their record: two records' unknown images must never pair up in a paired test
        ids += [f"<missing-{label}-{k}>" for k in range(1, n_missing - len(others) + 1)]
        first = group.iloc[0]
        for image_id in ids:
            extra.append(
                {
                    "dataset": dataset,
                    "method": first["method"],
                    "run_key": first["run_key"],
                    "image_id": image_id,
                    "msa": 0.0,
                    **dict.fromkeys(THRESHOLD_COLUMNS, 0.0),
                    "n_pred": 0,
                    "error": MISSING_ERROR,
                    "domain": first["domain"],
                    "label": label,
                    "n_expected": first["n_expected"],
                    "zeroed": True,
                }
            )
    if extra:
        rows = pd.concat([rows, pd.DataFrame(extra)], ignore_index=True)
    return rows


def msa_table(scores: pd.DataFrame, *, exclude_failed: bool = False) -> pd.DataFrame:
    """Mean mSA per (domain, dataset) x method label, rows ordered by domain then dataset.

    Means follow :func:`counted_scores` (failed and missing images count 0 unless ``exclude_failed``).
    ``table.attrs["zeroed"]`` holds, per cell, how many images were counted as 0 and ``table.attrs["n_images"]``
    over how many images the mean was taken (see :func:`zeroed_counts`).
    """
    valid = counted_scores(scores, exclude_failed=exclude_failed)
    if valid.empty:
        return pd.DataFrame()
    index = ["domain", "dataset"]
    table = valid.pivot_table(index=index, columns="label", values="msa", aggfunc="mean")
    order = sorted(table.index, key=lambda k: (domain_key(k[0]), k[0], k[1]))
    columns = order_methods(table.columns)
    counts = {
        name: valid.pivot_table(index=index, columns="label", values="zeroed", aggfunc=func).reindex(
            index=order, columns=columns
        )
        for name, func in (("zeroed", "sum"), ("n_images", "size"))
    }
    table = table.loc[order, columns]
    table.columns.name = None
    for name, frame in counts.items():
        frame.columns.name = None
        table.attrs[name] = frame.fillna(0).astype(int)
    return table


def zeroed_counts(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per cell of an mSA table: images counted as 0 (failed or missing) and images in the mean."""
    zero = pd.DataFrame(0, index=table.index, columns=table.columns)
    zeroed = table.attrs.get("zeroed", zero).reindex(index=table.index, columns=table.columns).fillna(0)
    n_images = table.attrs.get("n_images", zero).reindex(index=table.index, columns=table.columns).fillna(0)
    return zeroed.astype(int), n_images.astype(int)


def zeroed_footnote(table: pd.DataFrame) -> str | None:
    """The footnote explaining the ``*`` marks of a table, naming each marked cell's count; None if none."""
    zeroed, n_images = zeroed_counts(table)
    cells = [
        f"{label} on {dataset}: {zeroed.loc[(domain, dataset), label]} of "
        f"{n_images.loc[(domain, dataset), label]}"
        for domain, dataset in table.index
        for label in table.columns
        if zeroed.loc[(domain, dataset), label]
    ]
    if not cells:
        return None
    return (
        f"{FAILED_MARK} includes images that failed or were not run, each counted as 0 "
        f"(`apgbench report --exclude-failed` leaves them out): {'; '.join(cells)}."
    )


def ranks(table: pd.DataFrame) -> pd.DataFrame:
    """Rank of each method per dataset (1 = best; ties share the best rank; missing values stay NaN).

    Values are compared rounded to 9 decimals, so means equal up to floating-point noise count as ties.
    """
    return table.round(9).rank(axis=1, ascending=False, method="min")


def trained_marks(table: pd.DataFrame) -> pd.DataFrame:
    """Boolean frame like ``table``: True where the method was trained on the dataset's training split.

    The fact comes from the method's metadata (``MethodMeta.trained_on``; a variant ``id@name`` counts as
    ``id``). Datasets that are not in the registry (results of a removed or foreign config) and methods not
    registered here get no marks.
    """
    from ..datasets import get_dataset_config

    methods = available_methods()
    marks = pd.DataFrame(False, index=table.index, columns=table.columns)
    for domain, dataset in table.index:
        try:
            base = get_dataset_config(dataset).base_id
        except (KeyError, FileNotFoundError, ValueError):
            continue
        for label in table.columns:
            method = methods.get(base_method(label))
            marks.loc[(domain, dataset), label] = method is not None and base in method.meta.trained_on
    return marks


def apg_minus_ais(table: pd.DataFrame) -> pd.Series | None:
    """``apg - ais`` per dataset, or None when either method has no results at all."""
    if table.empty or "apg" not in table.columns or "ais" not in table.columns:
        return None
    return (table["apg"] - table["ais"]).rename(DIFF_COLUMN)


def fig2_csv_table(table: pd.DataFrame) -> pd.DataFrame:
    """The numbers of Fig. 2: the mSA table plus the APG - AIS column where it exists."""
    diff = apg_minus_ais(table)
    return table if diff is None else table.assign(**{DIFF_COLUMN: diff})


def _cells(table: pd.DataFrame, digits: int):
    """Per row: (domain, dataset, [(text, rank, trained, zeroed)], difference) for the renderers."""
    rank, trained, diff = ranks(table), trained_marks(table), apg_minus_ais(table)
    zeroed, _ = zeroed_counts(table)
    for domain, dataset in table.index:
        cells = []
        for label in table.columns:
            value, r = table.loc[(domain, dataset), label], rank.loc[(domain, dataset), label]
            text = "–" if np.isnan(value) else f"{value:.{digits}f}"
            cells.append(
                (
                    text,
                    None if np.isnan(value) else int(r),
                    not np.isnan(value) and bool(trained.loc[(domain, dataset), label]),
                    not np.isnan(value) and bool(zeroed.loc[(domain, dataset), label]),
                )
            )
        d = (
            None
            if diff is None or np.isnan(diff.loc[(domain, dataset)])
            else float(diff.loc[(domain, dataset)])
        )
        yield domain, dataset, cells, d


def _signed(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{round(value, digits) + 0.0:+.{digits}f}".replace("-", "−")


def format_markdown(table: pd.DataFrame, *, digits: int = 3) -> str:
    """Markdown Fig. 2 table: one row per dataset, domain first; top three ¹²³ (best bold), trained †."""
    if table.empty:
        return "_No results yet._\n"
    diff_header = apg_minus_ais(table) is not None
    methods = list(table.columns)
    head = ["domain", "dataset", *methods] + ([DIFF_COLUMN] if diff_header else [])
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
    for domain, dataset, cells, d in _cells(table, digits):
        texts = []
        for text, r, trained, zero in cells:
            text = (
                text + ("\\" + FAILED_MARK if zero else "") + MARKS.get(r, "") + (TRAINED if trained else "")
            )
            texts.append(f"**{text}**" if r == 1 else text)
        if diff_header:
            texts.append(_signed(d, digits))
        lines.append(f"| {DOMAIN_TITLES.get(domain, domain)} | {dataset} | " + " | ".join(texts) + " |")
    legend = (
        f"\n¹ ² ³: top three per dataset (best in bold). {TRAINED}: the method was trained on this "
        "dataset's training split. –: no result.\n"
    )
    footnote = zeroed_footnote(table)
    if footnote:
        legend += "\n" + footnote.replace(FAILED_MARK, "\\" + FAILED_MARK, 1) + "\n"
    return "\n".join(lines) + "\n" + legend


def format_latex(table: pd.DataFrame, *, digits: int = 3) -> str:
    """LaTeX Fig. 2 table (booktabs), one block per domain; best bold, 2nd/3rd underlined/italic, † trained."""
    if table.empty:
        return "% no results\n"
    diff_header = apg_minus_ais(table) is not None
    methods = list(table.columns)
    ncols = 1 + len(methods) + int(diff_header)
    style = {1: r"\textbf{%s}", 2: r"\underline{%s}", 3: r"\textit{%s}"}
    header = ["Dataset", *(latex_escape(m) for m in methods)] + ([r"APG$-$AIS"] if diff_header else [])
    lines = [r"\begin{tabular}{l" + "r" * (ncols - 1) + "}", r"\toprule", " & ".join(header) + r" \\"]
    current = None
    for domain, dataset, cells, d in _cells(table, digits):
        if domain != current:
            title = latex_escape(DOMAIN_TITLES.get(domain, domain))
            lines += [r"\midrule", rf"\multicolumn{{{ncols}}}{{l}}{{\emph{{{title}}}}} \\"]
            current = domain
        texts = []
        for text, r, trained, zero in cells:
            text = (style[r] % text if r in style else text.replace("–", "--")) + (r"$^{*}$" if zero else "")
            texts.append(text + (r"$^\dagger$" if trained else ""))
        if diff_header:
            texts.append("--" if d is None else f"${d:+.{digits}f}$")
        lines.append(latex_escape(dataset) + " & " + " & ".join(texts) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    caption = (
        r"Mean segmentation accuracy (mSA). Best per dataset in bold, second underlined, third in italics; "
        r"$^\dagger$: trained on this dataset's training split."
    )
    footnote = zeroed_footnote(table)
    if footnote:
        caption += " " + latex_escape(footnote).replace(FAILED_MARK, r"$^{*}$", 1)
    head = "% needs \\usepackage{booktabs}\n\\begin{table}[t]\n\\centering\n\\small\n"
    return head + "\n".join(lines) + f"\n\\caption{{{caption}}}\n\\end{{table}}\n"


def format_html(table: pd.DataFrame, *, digits: int = 3, paper: pd.DataFrame | None = None) -> str:
    """HTML Fig. 2 table with the top three shaded; ``paper`` (same layout) adds the paper's value as a tooltip."""
    if table.empty:
        return "<p><em>No results yet.</em></p>"
    diff_header = apg_minus_ais(table) is not None
    head = "".join(f"<th>{html.escape(m)}</th>" for m in table.columns)
    head = f"<tr><th>dataset</th>{head}" + (f"<th>{DIFF_COLUMN}</th>" if diff_header else "") + "</tr>"
    rows, current, width = [], None, len(table.columns) + 1 + int(diff_header)
    for domain, dataset, cells, d in _cells(table, digits):
        if domain != current:
            title = html.escape(DOMAIN_TITLES.get(domain, domain))
            rows.append(f'<tr class="domain"><th colspan="{width}">{title}</th></tr>')
            current = domain
        tds = []
        for label, (text, r, trained, zero) in zip(table.columns, cells):
            mark = MARKS.get(r, "") + (TRAINED if trained else "")
            text += FAILED_MARK if zero else ""
            css = f' class="top{r}"' if r in MARKS else ""
            tip = ""
            if (
                paper is not None
                and label in paper.columns
                and not np.isnan(paper.loc[(domain, dataset), label])
            ):
                tip = f' title="paper: {paper.loc[(domain, dataset), label]:.3f}"'
            tds.append(f"<td{css}{tip}>{text}<sup>{mark}</sup></td>")
        if diff_header:
            css = "" if d is None else (' class="pos"' if d > 0 else ' class="neg"' if d < 0 else "")
            tds.append(f"<td{css}>{_signed(d, digits)}</td>")
        rows.append(f"<tr><td>{html.escape(dataset)}</td>{''.join(tds)}</tr>")
    footnote = zeroed_footnote(table)
    note = f'<p class="footnote">{html.escape(footnote)}</p>' if footnote else ""
    return f'<table class="fig2"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>{note}'


def long_summary(scores: pd.DataFrame, counted: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (domain, dataset, method label): mSA, images scored (``n_images``), failed and missing
    images (in the mean as 0), seconds per image and peak memory. ``counted`` is :func:`counted_scores` of
    ``scores`` (computed if None).
    """
    counted = counted_scores(scores) if counted is None else counted
    keys = ["domain", "dataset", "label"]
    scored = counted[~counted["zeroed"].astype(bool)]
    summary = counted.groupby(keys).agg(msa=("msa", "mean"))
    summary = summary.join(
        scored.groupby(keys).agg(
            n_images=("msa", "size"),
            seconds_per_image=("seconds", "mean"),
            peak_mem_mb=("peak_mem_mb", "max"),
        ),
        how="left",
    )
    failed = scores[scores["error"].notna()].groupby(keys).size().rename("n_failed")
    missing = counted[counted["error"].eq(MISSING_ERROR)].groupby(keys).size()
    summary = summary.join(failed, how="outer").join(missing.rename("n_missing"), how="left")
    summary = summary.fillna({"n_failed": 0, "n_images": 0, "n_missing": 0})
    for column in ("n_failed", "n_images", "n_missing"):
        summary[column] = summary[column].astype(int)
    return summary.reset_index()
