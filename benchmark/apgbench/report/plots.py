"""The paper's figures as matplotlib plots (Fig. 1b, 2, 3) plus per-threshold accuracy curves.

Figures are built with :class:`matplotlib.figure.Figure` directly (no pyplot, no global backend state), so
they render headless with the Agg canvas. :func:`save_figure` writes PNG and/or SVG and returns the PNG bytes
for the HTML page.
"""

from __future__ import annotations

import functools
import io
import math
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from .tables import DOMAIN_TITLES, METHOD_ORDER, apg_minus_ais, base_method, domain_key, order_methods, ranks

PALETTE = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C", "#CCB974",
           "#64B5CD", "#2F4F4F", "#B8860B")
TOP_COLOURS = ("#1f77b4", "#6baed6", "#c6dbef")  # the paper's blues for the top three
REST_COLOUR = "#d9d9d9"
VARIANT_COLOURS = {"apg": "#FCDE9C", "apg-bd": "#7CCBA2"}  # the paper's Fig. 3 colours
VARIANT_NAMES = {"apg": "APG (components)", "apg-bd": "APG (boundary distance)"}
RC = {"font.size": 8, "axes.titlesize": 10, "axes.labelsize": 9, "xtick.labelsize": 8, "ytick.labelsize": 8,
      "svg.hashsalt": "apgbench"}


def method_colour(label: str) -> str:
    """A fixed colour per method id, so a method looks the same in every plot."""
    base = base_method(label)
    index = METHOD_ORDER.index(base) if base in METHOD_ORDER else len(METHOD_ORDER) + sum(map(ord, base))
    return PALETTE[index % len(PALETTE)]


def _styled(func):
    """Run a plotting function under the report's rc settings, leaving the caller's matplotlib state alone."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(RC):
            return func(*args, **kwargs)
    return wrapper


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def _clean(ax) -> None:
    ax.spines["top"].set_visible(False)
    ax.spines["right"].set_visible(False)


def _tick_labels(ax, labels: list[str], *, always: bool = False) -> None:
    """Tick labels, slanted and anchored at their tick when there are many (or ``always``)."""
    if always or len(labels) > 4:
        ax.set_xticklabels(labels, rotation=30, ha="right", rotation_mode="anchor")
    else:
        ax.set_xticklabels(labels)


@_styled
def save_figure(fig: Figure, out: Path, stem: str, formats=("png", "svg"), *,
                dpi: int = 150) -> tuple[list[Path], bytes]:
    """Write ``<stem>.png`` / ``<stem>.svg`` (those in ``formats``); return the paths and the PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    png = buffer.getvalue()
    written = []
    if "png" in formats:
        (out / f"{stem}.png").write_bytes(png)
        written.append(out / f"{stem}.png")
    if "svg" in formats:
        fig.savefig(out / f"{stem}.svg", format="svg", metadata={"Date": None})
        written.append(out / f"{stem}.svg")
    return written, png


@_styled
def fig2_domain(table: pd.DataFrame, domain: str, trained: pd.DataFrame) -> Figure:
    """Fig. 2 for one domain: grouped bars (datasets x methods), top three opaque with their rank above,
    the others faded, hatched where the method was trained on the dataset, APG - AIS written above each group."""
    sub, rank, marks = table.xs(domain, level=0), ranks(table).xs(domain, level=0), trained.xs(domain, level=0)
    sub = sub.loc[:, sub.notna().any()]
    methods, datasets = list(sub.columns), list(sub.index)
    diff = apg_minus_ais(table)
    width_total = 0.82
    bar = width_total / max(1, len(methods))
    fig = _figure(max(6.0, 0.17 * len(methods) * len(datasets) + 2.5), 3.6)
    ax = fig.add_subplot()
    for i, dataset in enumerate(datasets):
        present = [m for m in methods if not np.isnan(sub.loc[dataset, m])]
        for j, label in enumerate(present):  # centred on the dataset's tick, whatever ran on it
            x = i + (j - (len(present) - 1) / 2) * bar
            value = sub.loc[dataset, label]
            r = int(rank.loc[dataset, label])
            top = r <= 3
            ax.bar(x, value, bar * 0.92, color=method_colour(label), alpha=1.0 if top else 0.3,
                   edgecolor="black" if top else "none", linewidth=0.7,
                   hatch="///" if marks.loc[dataset, label] else None, zorder=2)
            if top:
                ax.text(x, value + 0.01, str(r), ha="center", va="bottom", fontsize=6, fontweight="bold")
    for i, dataset in enumerate(datasets):
        if diff is not None and not np.isnan(diff.loc[(domain, dataset)]):
            d = float(diff.loc[(domain, dataset)])
            top = np.nanmax(sub.loc[dataset].to_numpy(float))
            ax.text(i, min(top + 0.07, 1.04), f"APG−AIS {d:+.3f}".replace("-", "−"), ha="center", va="bottom",
                    fontsize=7, color="#1a7f37" if d >= 0 else "#b42318", fontweight="bold")
    ax.set_xticks(np.arange(len(datasets)))
    _tick_labels(ax, datasets)
    ax.set_ylim(0, 1.1)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_ylabel("Mean segmentation accuracy (mSA)")
    ax.set_title(DOMAIN_TITLES.get(domain, domain), fontweight="bold")
    ax.grid(axis="y", alpha=0.3, zorder=0)
    _clean(ax)
    handles = [Patch(facecolor=method_colour(m), edgecolor="black", label=m) for m in methods]
    handles.append(Patch(facecolor="white", edgecolor="black", hatch="///", label="trained on this dataset"))
    handles.append(Patch(facecolor="#888888", alpha=0.3, label="not in top three"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, fontsize=7)
    return fig


@_styled
def fig1b_ranks(means: pd.DataFrame, avg_ranks: pd.DataFrame) -> Figure:
    """Fig. 1b: per domain and overall, mean mSA per method as bars annotated with the average rank; the
    three best average ranks in the paper's blues, the others grey."""
    panels = [c for c in means.columns]
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig = _figure(3.6 * ncols, 3.2 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, panel in zip(axes, panels):
        values = means[panel].dropna()
        methods = [m for m in means.index if m in values.index]
        rank = avg_ranks.loc[methods, panel]
        order = rank.sort_values(kind="stable").index.tolist()
        colours = [TOP_COLOURS[order.index(m)] if order.index(m) < 3 else REST_COLOUR for m in methods]
        xs = np.arange(len(methods))
        ax.bar(xs, values.loc[methods], color=colours, edgecolor="black", linewidth=0.4, zorder=2)
        for x, m in zip(xs, methods):
            ax.text(x, min(values[m] + 0.01, 0.9), f"{values[m]:.3f}\n({rank[m]:.2f})", ha="center", va="bottom",
                    fontsize=7, fontweight="bold" if base_method(m) == "apg" else "normal")
        ax.set_xticks(xs)
        _tick_labels(ax, methods, always=True)
        ax.set_ylim(0, 1)
        ax.set_title("Overall" if panel == "overall" else DOMAIN_TITLES.get(panel, panel), fontweight="bold")
        _clean(ax)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    axes[0].set_ylabel("mSA (average rank)")
    fig.suptitle("Mean mSA per domain; in brackets the average rank over datasets (1 = best)", fontsize=9)
    return fig


@_styled
def fig3_relative(relative: pd.DataFrame) -> Figure:
    """Fig. 3: relative mSA difference of the APG variants to AIS (%), one panel per domain, datasets on x."""
    domains = sorted(dict.fromkeys(relative.index.get_level_values(0)), key=domain_key)
    ncols = min(2, len(domains))
    nrows = math.ceil(len(domains) / ncols)
    variants = list(relative.columns)
    fig = _figure(5.2 * ncols, 3.3 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    width = 0.8 / len(variants)
    for ax, domain in zip(axes, domains):
        sub = relative.xs(domain, level=0)
        values = sub.to_numpy(float)
        finite = values[np.isfinite(values)]
        low, high = (finite.min(), finite.max()) if finite.size else (0.0, 0.0)
        limit = max(5.0, 1.35 * max(abs(low), abs(high)))  # room for the mean's text
        if low < 0:
            ax.axhspan(low, 0, color="#fee0d2", alpha=0.8, zorder=0)
        if high > 0:
            ax.axhspan(0, high, color="#e0f3db", alpha=0.8, zorder=0)
        xs = np.arange(len(sub))
        for j, variant in enumerate(variants):
            pos = xs + (j - (len(variants) - 1) / 2) * width
            heights = sub[variant].to_numpy(float)
            colour = VARIANT_COLOURS.get(variant, method_colour(variant))
            ax.bar(pos, np.nan_to_num(heights), width * 0.95, color=colour, edgecolor="black", linewidth=0.5, zorder=2)
            for x, h in zip(pos, heights):
                if np.isfinite(h):
                    ax.text(x, -0.04 * limit if h > 0 else 0.04 * limit, f"{h:+.1f}%", rotation=90, fontsize=6,
                            ha="center", va="top" if h > 0 else "bottom", zorder=3)
        means = ", ".join(f"{VARIANT_NAMES.get(v, v)} {sub[v].mean():+.1f}%" for v in variants if sub[v].notna().any())
        ax.text(0.01, 0.98, f"mean: {means}", transform=ax.transAxes, fontsize=7, va="top")
        ax.axhline(0, color="black", linewidth=0.8, zorder=2)
        ax.set_ylim(-limit, limit)
        ax.set_xticks(xs)
        _tick_labels(ax, list(sub.index))
        ax.set_title(DOMAIN_TITLES.get(domain, domain), fontweight="bold")
        _clean(ax)
    for ax in axes[len(domains):]:
        ax.set_visible(False)
    axes[0].set_ylabel("Relative mSA vs. AIS (%)")
    handles = [Patch(facecolor=VARIANT_COLOURS.get(v, method_colour(v)), edgecolor="black",
                     label=f"{VARIANT_NAMES.get(v, v)} [{v}]") for v in variants]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False)
    return fig


@_styled
def threshold_plot(curves: pd.DataFrame) -> Figure:
    """Segmentation accuracy against the IoU threshold (0.5 ... 0.95), one panel per domain, a line per method."""
    domains = sorted(curves["domain"].unique(), key=domain_key)
    ncols = min(4, len(domains))
    nrows = math.ceil(len(domains) / ncols)
    fig = _figure(3.2 * ncols + 1.4, 3.0 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True).ravel()
    labels = []
    for ax, domain in zip(axes, domains):
        sub = curves[curves["domain"] == domain]
        for method in order_methods(sub["method"].unique()):
            line = sub[sub["method"] == method]
            ax.plot(line["threshold"], line["sa"], marker="o", markersize=3, linewidth=1.2,
                    color=method_colour(method), label=method)
            labels.append(method)
        ax.set_title(DOMAIN_TITLES.get(domain, domain), fontweight="bold")
        ax.set_xlabel("IoU threshold")
        ax.set_xticks([0.5, 0.6, 0.7, 0.8, 0.9])
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        _clean(ax)
    for ax in axes[len(domains):]:
        ax.set_visible(False)
    axes[0].set_ylabel("Segmentation accuracy SA(t)")
    seen = list(dict.fromkeys(labels))
    handles = [Patch(facecolor=method_colour(m), label=m) for m in seen]
    fig.legend(handles=handles, loc="outside right upper", frameon=False)
    return fig


@_styled
def interval_plot(intervals: pd.DataFrame) -> Figure:
    """mSA with its bootstrap 95% interval, one panel per domain: datasets on x, a dot and whisker per method."""
    domains = sorted(intervals["domain"].unique(), key=domain_key)
    methods = order_methods(intervals["method"].unique())
    most = max(intervals.groupby("domain")["dataset"].nunique())
    ncols = 1 if most * len(methods) > 40 else min(2, len(domains))
    nrows = math.ceil(len(domains) / ncols)
    fig = _figure(max(6.0, 0.09 * len(methods) * most + 2.5) * ncols, 2.9 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    step = 0.8 / max(1, len(methods))
    for ax, domain in zip(axes, domains):
        sub = intervals[intervals["domain"] == domain]
        datasets = sorted(sub["dataset"].unique())
        for j, method in enumerate(methods):
            rows = sub[sub["method"] == method]
            if rows.empty:
                continue
            xs = [datasets.index(d) + (j - (len(methods) - 1) / 2) * step for d in rows["dataset"]]
            ax.errorbar(xs, rows["msa"], yerr=[rows["msa"] - rows["ci_low"], rows["ci_high"] - rows["msa"]],
                        fmt="o", markersize=2.5, capsize=1.5, linewidth=0.9, color=method_colour(method),
                        label=method)
        ax.set_xticks(np.arange(len(datasets)))
        _tick_labels(ax, datasets)
        ax.set_ylim(0, 1)
        ax.set_title(DOMAIN_TITLES.get(domain, domain), fontweight="bold")
        ax.grid(axis="y", alpha=0.3)
        _clean(ax)
    for ax in axes[len(domains):]:
        ax.set_visible(False)
    axes[0].set_ylabel("mSA, bootstrap 95% interval")
    fig.legend(handles=[Patch(facecolor=method_colour(m), label=m) for m in methods], loc="outside right upper",
               frameon=False)
    return fig
