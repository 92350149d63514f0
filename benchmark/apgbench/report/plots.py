"""The paper's figures as matplotlib plots (Fig. 1b, 2, 3) plus per-threshold accuracy curves.

Figures are built with :class:`matplotlib.figure.Figure` directly (no pyplot, no global backend state), so
they render headless with the Agg canvas. :func:`save_figure` writes PNG and/or SVG and returns the PNG bytes
for the HTML page.
"""

from __future__ import annotations

import functools
import hashlib
import io
import math
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from ..methods import method_order
from .tables import DOMAIN_TITLES, apg_minus_ais, base_method, domain_key, order_methods, ranks

PALETTE = (
    "#4C72B0",
    "#DD8452",
    "#55A868",
    "#C44E52",
    "#8172B3",
    "#937860",
    "#DA8BC3",
    "#8C8C8C",
    "#CCB974",
    "#64B5CD",
    "#2F4F4F",
    "#B8860B",
)
TOP_COLOURS = ("#1f77b4", "#6baed6", "#c6dbef")  # the paper's blues for the top three
REST_COLOUR = "#d9d9d9"
VARIANT_COLOURS = {"apg": "#FCDE9C", "apg-bd": "#7CCBA2"}  # the paper's Fig. 3 colours
VARIANT_NAMES = {"apg": "APG (components)", "apg-bd": "APG (boundary distance)"}
RC = {
    "font.size": 8,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "svg.hashsalt": "apgbench",
}


# Parameter variants (``apg[lowthresh]``) get colours of their own, never their method's.
# Far from every PALETTE colour; markers and line styles (method_marker) tell variants apart as well.
VARIANT_PALETTE = ("#111111", "#D81B60", "#00897B", "#827717", "#6A1B9A")


def _stable_index(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


def method_colour(label: str) -> str:
    """A fixed colour per table label, so a method looks the same in every plot; a parameter variant
    (``apg[p-1a2b]``) has its own colour from :data:`VARIANT_PALETTE` and :func:`method_marker` sets it apart.
    """
    base = base_method(label)
    if label != base:
        return VARIANT_PALETTE[_stable_index(label) % len(VARIANT_PALETTE)]
    order = method_order()
    index = order.index(base) if base in order else len(order) + _stable_index(base)
    return PALETTE[index % len(PALETTE)]


def method_marker(label: str) -> tuple[str, str]:
    """(marker, line style) of a label in point and line plots: variants are squares on dashed lines."""
    return ("s", "--") if label != base_method(label) else ("o", "-")


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
def save_figure(
    fig: Figure, out: Path, stem: str, formats=("png", "svg"), *, dpi: int = 150
) -> tuple[list[Path], bytes]:
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
    the others faded, hatched where the method was trained on the dataset, APG - AIS written above each group.
    """
    sub, rank, marks = (
        table.xs(domain, level=0),
        ranks(table).xs(domain, level=0),
        trained.xs(domain, level=0),
    )
    sub = sub.loc[:, sub.notna().any()]
    methods, datasets = list(sub.columns), list(sub.index)
    diff = apg_minus_ais(table)
    width_total = 0.82
    bar = width_total / max(1, len(methods))
    fig = _figure(
        min(14.0, max(6.0, 0.17 * len(methods) * len(datasets) + 2.5)), 3.6
    )  # 14 in: legible on the page
    ax = fig.add_subplot()
    for i, dataset in enumerate(datasets):
        present = [m for m in methods if not np.isnan(sub.loc[dataset, m])]
        for j, label in enumerate(present):  # centred on the dataset's tick, whatever ran on it
            x = i + (j - (len(present) - 1) / 2) * bar
            value = sub.loc[dataset, label]
            r = int(rank.loc[dataset, label])
            top = r <= 3
            ax.bar(
                x,
                value,
                bar * 0.92,
                color=method_colour(label),
                alpha=1.0 if top else 0.3,
                edgecolor="black" if top else "none",
                linewidth=0.7,
                hatch="///" if marks.loc[dataset, label] else None,
                zorder=2,
            )
            if top:
                ax.text(x, value + 0.01, str(r), ha="center", va="bottom", fontsize=6, fontweight="bold")
    for i, dataset in enumerate(datasets):
        if diff is not None and not np.isnan(diff.loc[(domain, dataset)]):
            d = float(diff.loc[(domain, dataset)])
            top = np.nanmax(sub.loc[dataset].to_numpy(float))
            ax.text(
                i,
                top + 0.07,
                f"APG−AIS {d:+.3f}".replace("-", "−"),
                ha="center",
                va="bottom",
                fontsize=7,
                color="#1a7f37" if d >= 0 else "#b42318",
                fontweight="bold",
            )
    ax.set_xticks(np.arange(len(datasets)))
    _tick_labels(ax, datasets)
    ax.set_ylim(0, 1.17)  # rank numbers and the APG - AIS line stay clear of bars at 1.0
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
    """Fig. 1b: per domain and overall, one horizontal bar per ranked method (best average rank on top), its
    length the mean mSA, the numbers beside it; the three best average ranks in the paper's blues (legend).
    """
    panels = list(means.columns)
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    most = max(int(means[p].notna().sum()) for p in panels)
    fig = _figure(4.4 * ncols, (0.24 * most + 0.9) * nrows + 0.5)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, panel in zip(axes, panels):
        values = means[panel].dropna()
        rank = avg_ranks.loc[values.index, panel].sort_values(kind="stable")
        order = list(rank.index)
        colours = [TOP_COLOURS[i] if i < 3 else REST_COLOUR for i in range(len(order))]
        ys = np.arange(len(order))
        ax.barh(ys, values.loc[order], color=colours, edgecolor="black", linewidth=0.4, height=0.75, zorder=2)
        for y, m in zip(ys, order):  # beside the bar, never on it
            ax.text(
                values[m] + 0.015,
                y,
                f"{values[m]:.3f}  (rank {rank[m]:.2f})",
                va="center",
                ha="left",
                fontsize=7,
                fontweight="bold" if base_method(m) == "apg" else "normal",
            )
        ax.set_yticks(ys)
        ax.set_yticklabels(order)
        ax.invert_yaxis()
        ax.set_xlim(0, 1.45)  # room for the numbers
        ax.set_xticks(np.linspace(0, 1, 6))
        ax.spines["bottom"].set_bounds(0, 1)
        ax.set_xlabel("mean mSA")
        ax.grid(axis="x", alpha=0.3, zorder=0)
        ax.set_title("Overall" if panel == "overall" else DOMAIN_TITLES.get(panel, panel), fontweight="bold")
        _clean(ax)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    handles = [
        Patch(facecolor=c, edgecolor="black", label=name)
        for c, name in zip(TOP_COLOURS, ("best average rank", "second", "third"))
    ]
    handles.append(Patch(facecolor=REST_COLOUR, edgecolor="black", label="the others"))
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False)
    fig.suptitle("Mean mSA per domain, methods ordered by average rank over datasets (1 = best)", fontsize=9)
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
        low, high = (min(0.0, finite.min()), max(0.0, finite.max())) if finite.size else (0.0, 0.0)
        pad = max(4.0, 0.3 * (high - low))  # room for the labels at the bar ends
        if low < 0:
            ax.axhspan(low, 0, color="#fee0d2", alpha=0.8, zorder=0)
        if high > 0:
            ax.axhspan(0, high, color="#e0f3db", alpha=0.8, zorder=0)
        xs = np.arange(len(sub))
        for j, variant in enumerate(variants):
            pos = xs + (j - (len(variants) - 1) / 2) * width
            heights = sub[variant].to_numpy(float)
            colour = VARIANT_COLOURS.get(variant, method_colour(variant))
            ax.bar(
                pos,
                np.nan_to_num(heights),
                width * 0.95,
                color=colour,
                edgecolor="black",
                linewidth=0.5,
                zorder=2,
            )
            for x, h in zip(pos, heights):
                if np.isfinite(h):  # at the bar's end, reading upwards, on the bar's side of the axis
                    ax.text(
                        x,
                        h + (0.02 if h >= 0 else -0.02) * (high - low + pad),
                        f"{h:+.1f}%".replace("-", "−"),
                        rotation=90,
                        fontsize=6,
                        ha="center",
                        va="bottom" if h >= 0 else "top",
                        zorder=3,
                    )
        means = ", ".join(
            f"{VARIANT_NAMES.get(v, v)} {sub[v].mean():+.1f}%".replace("-", "−")
            for v in variants
            if sub[v].notna().any()
        )
        ax.axhline(0, color="black", linewidth=0.8, zorder=2)
        ax.set_ylim(low - (pad if low < 0 else 0.1 * pad), high + pad)
        ax.set_xticks(xs)
        _tick_labels(ax, list(sub.index))
        ax.set_title(f"{DOMAIN_TITLES.get(domain, domain)}\nmean: {means}", fontsize=9)
        _clean(ax)
    for ax in axes[len(domains) :]:
        ax.set_visible(False)
    axes[0].set_ylabel("Relative mSA vs. AIS (%)")
    handles = [
        Patch(
            facecolor=VARIANT_COLOURS.get(v, method_colour(v)),
            edgecolor="black",
            label=f"{VARIANT_NAMES.get(v, v)} [{v}]",
        )
        for v in variants
    ]
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
            marker, style = method_marker(method)
            ax.plot(
                line["threshold"],
                line["sa"],
                marker=marker,
                markersize=3,
                linewidth=1.2,
                linestyle=style,
                color=method_colour(method),
                label=method,
                clip_on=False,
                zorder=3,
            )
            labels.append(method)
        ax.set_title(DOMAIN_TITLES.get(domain, domain), fontweight="bold")
        ax.set_xlabel("IoU threshold")
        ax.set_xticks([0.5, 0.6, 0.7, 0.8, 0.9])
        ax.set_ylim(0, 1.04)  # a curve at 1.0 stays whole
        ax.set_yticks(np.linspace(0, 1, 6))
        ax.grid(alpha=0.3)
        _clean(ax)
    for ax in axes[len(domains) :]:
        ax.set_visible(False)
    axes[0].set_ylabel("Segmentation accuracy SA(t)")
    seen = list(dict.fromkeys(labels))
    fig.legend(handles=[_legend_line(m) for m in seen], loc="outside right upper", frameon=False)
    return fig


@_styled
def interval_plot(intervals: pd.DataFrame) -> Figure:
    """MSA with its bootstrap 95% interval, one panel per domain: datasets on x, a dot and whisker per method."""
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
            marker, _ = method_marker(method)
            bars = ax.errorbar(
                xs,
                rows["msa"],
                yerr=[rows["msa"] - rows["ci_low"], rows["ci_high"] - rows["msa"]],
                fmt=marker,
                markersize=2.5,
                capsize=1.5,
                linewidth=0.9,
                color=method_colour(method),
                label=method,
                zorder=3,
            )
            for artist in bars.get_children():
                artist.set_clip_on(False)  # a point at 1.0 stays whole
        ax.set_xticks(np.arange(len(datasets)))
        _tick_labels(ax, datasets)
        ax.set_ylim(0, 1.04)
        ax.set_yticks(np.linspace(0, 1, 6))
        ax.set_title(DOMAIN_TITLES.get(domain, domain), fontweight="bold")
        ax.grid(axis="y", alpha=0.3)
        _clean(ax)
    for ax in axes[len(domains) :]:
        ax.set_visible(False)
    axes[0].set_ylabel("mSA, bootstrap 95% interval")
    fig.legend(
        handles=[_legend_line(m, line=False) for m in methods], loc="outside right upper", frameon=False
    )
    return fig


def _legend_line(label: str, *, line: bool = True) -> Line2D:
    """A legend entry with the label's colour, marker and (for line plots) line style."""
    marker, style = method_marker(label)
    return Line2D(
        [],
        [],
        color=method_colour(label),
        marker=marker,
        markersize=4,
        label=label,
        linestyle=style if line else "none",
        linewidth=1.2,
    )
