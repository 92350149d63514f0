"""Statistics beyond the paper: bootstrap intervals, average ranks, relative differences, paired tests.

All functions take the per-image score frame of :func:`apgbench.results.load_scores` (already restricted to
scorable rows by :func:`apgbench.report.tables.scorable`) or the mSA table built from it, and return
DataFrames. Random resampling is seeded, so a report is reproducible.
"""

from __future__ import annotations

import hashlib
import warnings

import numpy as np
import pandas as pd

from ..results import THRESHOLD_COLUMNS
from .tables import DOMAIN_ORDER, domain_key, ranks

N_BOOT = 2000


def _rng(seed: int, *keys: str) -> np.random.Generator:
    """A generator seeded by ``seed`` and the keys, so each interval is independent of report order."""
    digest = hashlib.sha256("\0".join(keys).encode()).digest()
    return np.random.default_rng([seed, int.from_bytes(digest[:8], "little")])


def bootstrap_ci(
    values: np.ndarray, *, n_boot: int = N_BOOT, level: float = 0.95, rng: np.random.Generator | None = None
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (resampling the values with replacement).

    Parameters
    ----------
    values : array
        One number per image.
    n_boot : int
        Number of resamples.
    level : float
        Coverage of the interval.
    rng : Generator, optional
        Random generator (default: seeded with 0).

    Returns
    -------
    low, high : float
        NaN for an empty input; the value itself for a single image.
    """
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return np.nan, np.nan
    rng = rng or np.random.default_rng(0)
    means = np.empty(n_boot)
    chunk = max(1, 2_000_000 // values.size)  # bounds memory for datasets with many images
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        means[start:stop] = values[rng.integers(0, values.size, (stop - start, values.size))].mean(axis=1)
    alpha = (1 - level) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return float(low), float(high)


def msa_intervals(valid: pd.DataFrame, *, seed: int = 0, n_boot: int = N_BOOT) -> pd.DataFrame:
    """Per (domain, dataset, method label): mSA, bootstrap 95% interval over images, images in the mean."""
    rows = []
    for (domain, dataset, label), group in valid.groupby(["domain", "dataset", "label"], sort=False):
        # sorted values and a seed that depends only on their number: identical per-image scores get identical
        # intervals, whatever the method, dataset or storage order (the mean does not depend on the order)
        values = np.sort(group["msa"].to_numpy(float))
        low, high = bootstrap_ci(values, n_boot=n_boot, rng=_rng(seed, "msa", str(values.size)))
        rows.append(
            {
                "domain": domain,
                "dataset": dataset,
                "method": label,
                "msa": values.mean(),
                "ci_low": low,
                "ci_high": high,
                "n_images": values.size,
            }
        )
    return pd.DataFrame(rows, columns=["domain", "dataset", "method", "msa", "ci_low", "ci_high", "n_images"])


def ranked_block(table: pd.DataFrame) -> tuple[list, list[str]]:
    """The datasets (index keys) and methods over which an average rank is fair.

    Every such method has a result on every such dataset.

    The datasets are those that all methods with the most results have; the methods, all that have results
    on each of those datasets. A method missing one of them is not ranked (its coverage is reported instead),
    so a method run only on easy datasets can never top a ranking of methods run on all of them.
    """
    if table.empty:
        return [], []
    present = table.notna()
    coverage = present.sum(axis=0)
    widest = coverage.index[coverage == coverage.max()]
    rows = [key for key in table.index if present.loc[key, widest].all()]
    methods = [m for m in table.columns if rows and present.loc[rows, m].all()]
    return rows, methods


def _block_ranks(table: pd.DataFrame) -> tuple[pd.Series, pd.Series, list]:
    """Average rank and mean mSA over :func:`ranked_block` of ``table`` (NaN for methods outside it)."""
    rows, methods = ranked_block(table)
    avg = pd.Series(np.nan, index=table.columns)
    mean = pd.Series(np.nan, index=table.columns)
    if methods:
        block = table.loc[rows, methods]
        avg[methods] = ranks(block).mean(axis=0)
        mean[methods] = block.mean(axis=0)
    return avg, mean, rows


def average_ranks(table: pd.DataFrame) -> pd.DataFrame:
    """Paper Fig. 1b: mean over datasets of each method's rank, per domain and overall.

    Ranks are taken only where every ranked method has a result (:func:`ranked_block`, per domain and
    overall): a method is ranked on a dataset among the ranked methods (1 = best, ties share the best rank),
    and averaged over the block's datasets. Methods outside the block get NaN; ``n_datasets`` gives each
    method's coverage and ``result.attrs["overall_datasets"]`` the datasets of the overall rank.

    Returns
    -------
    DataFrame
        Index: method labels; columns: one per domain present, then ``overall``; plus ``n_datasets``.
    """
    if table.empty:
        return pd.DataFrame()
    domains = [d for d in DOMAIN_ORDER if d in table.index.get_level_values(0)]
    domains += [d for d in dict.fromkeys(table.index.get_level_values(0)) if d not in domains]
    result = pd.DataFrame({d: _block_ranks(table.xs(d, level=0, drop_level=False))[0] for d in domains})
    overall, _, rows = _block_ranks(table)
    result["overall"] = overall
    result["n_datasets"] = table.notna().sum(axis=0).astype(int)
    result = result.sort_values(["overall", "n_datasets"], ascending=[True, False], na_position="last")
    result.attrs["overall_datasets"] = sorted(dataset for _, dataset in rows)
    return result


def domain_means(table: pd.DataFrame) -> pd.DataFrame:
    """Mean of the dataset mSAs per domain and overall (each dataset weighs the same, as in the paper).

    Over the same datasets as :func:`average_ranks` (NaN for methods it does not rank).
    """
    if table.empty:
        return pd.DataFrame()
    result = pd.DataFrame(
        {
            d: _block_ranks(table.xs(d, level=0, drop_level=False))[1]
            for d in dict.fromkeys(table.index.get_level_values(0))
        }
    )
    result["overall"] = _block_ranks(table)[1]
    return result


def coverage_notes(table: pd.DataFrame) -> list[str]:
    """Sentences naming the methods left out of the overall rank for lack of results, with their coverage."""
    if table.empty:
        return []
    rows, methods = ranked_block(table)
    left = [m for m in table.columns if m not in methods]
    if not left:
        return []
    counts = table.notna().sum(axis=0)
    named = ", ".join(f"{m} ({counts[m]} of {len(table)} datasets)" for m in left)
    note = (
        f"Not ranked overall for lack of results: {named}; the overall rank is over the {len(rows)} "
        "dataset(s) every ranked method has."
    )
    return [note]


def relative_difference(
    table: pd.DataFrame, *, variants=("apg", "apg-bd"), reference: str = "ais"
) -> pd.DataFrame:
    """Paper Fig. 3: ``100 * (variant - reference) / reference`` per dataset, in percent.

    Returns an empty frame when the reference or every variant is missing; datasets where the reference is
    zero or missing get NaN.
    """
    present = [v for v in variants if v in table.columns]
    if table.empty or reference not in table.columns or not present:
        return pd.DataFrame()
    base = table[reference].where(table[reference] > 0)
    return pd.DataFrame({v: 100.0 * (table[v] - base) / base for v in present}).dropna(how="all")


def threshold_curves(valid: pd.DataFrame) -> pd.DataFrame:
    """SA at each IoU threshold per (domain, method): the dataset means, averaged over the domain's datasets.

    Returns a long frame with columns domain, method, threshold, sa.
    """
    if valid.empty:
        return pd.DataFrame(columns=["domain", "method", "threshold", "sa"])
    per_dataset = valid.groupby(["domain", "dataset", "label"])[THRESHOLD_COLUMNS].mean()
    per_domain = per_dataset.groupby(level=["domain", "label"]).mean()
    long = per_domain.reset_index().melt(id_vars=["domain", "label"], var_name="column", value_name="sa")
    long["threshold"] = long["column"].str[2:].astype(int) / 100.0
    long = long.rename(columns={"label": "method"})
    return long[["domain", "method", "threshold", "sa"]].sort_values(["domain", "method", "threshold"])


def paired_test(
    valid: pd.DataFrame, first: str, second: str, *, seed: int = 0, n_boot: int = N_BOOT
) -> pd.DataFrame:
    """Compare two methods image by image on the images both scored.

    For every dataset, and for all datasets pooled (row ``all``): the number of common images, the mean of
    ``msa(first) - msa(second)`` with a bootstrap 95% interval, wins/ties/losses, and the two-sided p-value
    of the Wilcoxon signed-rank test (zero differences dropped; p = 1 when all differences are zero).
    """
    columns = [
        "domain",
        "dataset",
        "n_images",
        "mean_difference",
        "ci_low",
        "ci_high",
        "wins",
        "ties",
        "losses",
        "wilcoxon_p",
    ]
    pivot = valid[valid["label"].isin([first, second])].pivot_table(
        index=["domain", "dataset", "image_id"], columns="label", values="msa", aggfunc="mean"
    )
    if first not in pivot.columns or second not in pivot.columns:
        return pd.DataFrame(columns=columns)
    pivot = pivot.dropna(subset=[first, second])
    diff = (pivot[first] - pivot[second]).rename("d")
    groups = [
        ((domain, dataset), group.to_numpy())
        for (domain, dataset), group in diff.groupby(level=["domain", "dataset"], sort=False)
    ]
    groups.sort(key=lambda g: (domain_key(g[0][0]), g[0]))
    if len(groups) > 1:
        groups.append((("all", "all"), diff.to_numpy()))
    rows = []
    for (domain, dataset), d in groups:
        low, high = bootstrap_ci(d, n_boot=n_boot, rng=_rng(seed, "paired", dataset, first, second))
        rows.append(
            {
                "domain": domain,
                "dataset": dataset,
                "n_images": d.size,
                "mean_difference": d.mean(),
                "ci_low": low,
                "ci_high": high,
                "wins": int((d > 0).sum()),
                "ties": int((d == 0).sum()),
                "losses": int((d < 0).sum()),
                "wilcoxon_p": _wilcoxon(d),
            }
        )
    return pd.DataFrame(rows, columns=columns)


def _wilcoxon(d: np.ndarray) -> float:
    from scipy.stats import wilcoxon

    nonzero = d[d != 0]
    if nonzero.size == 0:
        return 1.0
    with warnings.catch_warnings():
        # scipy warns when it falls back from the exact distribution (ties, zeros); the approximation is intended
        warnings.simplefilter("ignore")
        return float(wilcoxon(nonzero, zero_method="wilcox", alternative="two-sided").pvalue)


def resources_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Per method label: seconds per image (mean, median), peak memory (max), images scored and failed."""
    if scores.empty:
        return pd.DataFrame()
    grouped = scores.groupby("label")
    seconds = pd.to_numeric(scores["seconds"], errors="coerce")
    memory = pd.to_numeric(scores["peak_mem_mb"], errors="coerce")
    table = pd.DataFrame(
        {
            "seconds_per_image": seconds.groupby(scores["label"]).mean(),
            "median_seconds": seconds.groupby(scores["label"]).median(),
            "peak_mem_mb": memory.groupby(scores["label"]).max(),
            "n_datasets": grouped["dataset"].nunique(),
            "n_scored": grouped["error"].apply(lambda e: int(e.isna().sum())),
            "n_failed": grouped["error"].apply(lambda e: int(e.notna().sum())),
        }
    )
    table.index.name = "method"
    return table
