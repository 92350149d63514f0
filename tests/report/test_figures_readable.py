"""Figures and page are readable (issue 12, item 14): nothing overlaps, nothing at 1.0 is clipped, every
colour is explained, a variant never wears its method's colour, and captions promise only what is there."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.patches import Rectangle

from apgbench.report import build_report, load_filtered_scores, plots
from apgbench.report.stats import (
    average_ranks,
    domain_means,
    msa_intervals,
    threshold_curves,
)
from apgbench.report.tables import counted_scores, msa_table

from .conftest import write_record

METHODS = {
    "amg": 0.3,
    "sam2-amg": 0.31,
    "cellsam": 0.45,
    "cellpose3": 0.5,
    "cellpose-sam": 0.62,
    "ais": 0.5,
    "apg-ref": 0.55,
    "apg-bd": 0.52,
    "apg": 1.0,
    "classic": 0.25,
}


@pytest.fixture
def crowded(tmp_path, config_dir):
    """Ten methods and a parameter variant on three datasets; apg is perfect (1.0) everywhere."""
    root = tmp_path / "results"
    for dataset, domain in (("dsb", "nuclei-fluo"), ("u20s", "nuclei-fluo"), ("tissuenet", "cells-fluo")):
        for method, value in METHODS.items():
            write_record(root, dataset, method, domain, {"a": value, "b": value})
        write_record(root, dataset, "apg", domain, {"a": 0.5, "b": 0.5}, run_key="p-0123456789")
    return root


def _boxes(fig):
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def test_fig1b_labels_clear_of_bars_and_colours_explained(crowded):
    table = msa_table(load_filtered_scores(crowded))
    fig = plots.fig1b_ranks(domain_means(table), average_ranks(table))
    renderer = _boxes(fig)
    assert fig.legends, "Fig. 1b needs a legend for its colours"
    legend_text = " ".join(t.get_text() for t in fig.legends[0].get_texts())
    assert "best" in legend_text and "others" in legend_text
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        bars = [
            p.get_window_extent(renderer)
            for p in ax.patches
            if isinstance(p, Rectangle) and p.get_width() > 0
        ]
        texts = [t.get_window_extent(renderer) for t in ax.texts]
        assert texts and bars
        for i, box in enumerate(texts):
            assert not any(box.overlaps(bar) for bar in bars), ax.texts[i].get_text()
            assert not any(box.overlaps(other) for other in texts[i + 1 :]), ax.texts[i].get_text()


def test_points_at_one_are_not_clipped(crowded):
    valid = counted_scores(load_filtered_scores(crowded))
    for fig in (
        plots.interval_plot(msa_intervals(valid, n_boot=50)),
        plots.threshold_plot(threshold_curves(valid)),
    ):
        renderer = _boxes(fig)
        for ax in fig.axes:
            if not ax.get_visible():
                continue
            assert ax.get_ylim()[1] > 1.0
            top = ax.transData.transform((0, 1.0))[1]
            assert top < ax.get_window_extent(renderer).y1 - 2  # room above 1.0 for a whole marker
            drawn = [
                a for a in ax.get_children() if hasattr(a, "get_clip_on") and getattr(a, "get_ydata", None)
            ]
            assert drawn and all(not a.get_clip_on() for a in drawn)


def test_variants_do_not_share_their_methods_colour():
    assert plots.method_colour("apg[p-0123456789]") != plots.method_colour("apg")
    assert plots.method_colour("apg[lowthresh]") != plots.method_colour("apg")
    assert plots.method_colour("apg[lowthresh]") == plots.method_colour("apg[lowthresh]")  # stable
    bases = {plots.method_colour(m) for m in METHODS}
    assert plots.method_colour("ais[p-1]") not in bases and plots.method_marker(
        "ais[p-1]"
    ) != plots.method_marker("ais")


def test_fig3_labels_sit_at_the_bar_ends(tmp_path, config_dir):
    index = pd.MultiIndex.from_tuples([("nuclei-fluo", "dsb"), ("nuclei-fluo", "u20s")])
    relative = pd.DataFrame({"apg": [119.6, -20.0], "apg-bd": [10.0, 0.0]}, index=index)
    fig = plots.fig3_relative(relative)
    renderer = _boxes(fig)
    ax = fig.axes[0]
    zero = ax.transData.transform((0, 0))[1]
    frame = ax.get_window_extent(renderer)
    labels = {t.get_text(): t.get_window_extent(renderer) for t in ax.texts if "%" in t.get_text()}
    assert "+119.6%" in labels
    for text, box in labels.items():
        above = not text.startswith("−")
        assert (box.y0 >= zero - 1) if above else (box.y1 <= zero + 1), text  # on the bar's side of the axis
        assert frame.y0 - 1 <= box.y0 and box.y1 <= frame.y1 + 1, text  # inside the panel
    big = labels["+119.6%"]
    bar_top = ax.transData.transform((0, 119.6))[1]
    assert big.y0 >= bar_top - 1  # above its bar, not under the axis


def test_captions_promise_only_what_is_there(tmp_path, config_dir):
    root = tmp_path / "results"
    write_record(root, "unknown-set", "classic", "nuclei-fluo", {"a": 0.5})  # no paper value, no apg/ais
    result = build_report(root, tmp_path / "out", formats=("html",), n_boot=10)
    page = result.html.read_text()
    fig2 = page[page.index('<section id="fig2">') : page.index('<section id="fig1b">')]
    assert "APG − AIS" not in fig2 and "Hover" not in fig2 and 'title="paper' not in fig2
    fig3 = page[page.index('<section id="fig3">') : page.index('<section id="paper">')]
    assert 'class="nodata"' in fig3 and "No data" in fig3
    write_record(root, "dsb", "ais", "nuclei-fluo", {"a": 0.5})
    write_record(root, "dsb", "apg", "nuclei-fluo", {"a": 0.6})
    page = build_report(root, tmp_path / "out2", formats=("html",), n_boot=10).html.read_text()
    fig2 = page[page.index('<section id="fig2">') : page.index('<section id="fig1b">')]
    assert "Last column: APG − AIS" in fig2 and "<th>APG − AIS</th>" in fig2
    if 'title="paper' in fig2:
        assert "Hover" in fig2


def test_rank_table_on_the_page_is_compact(crowded, tmp_path):
    result = build_report(crowded, tmp_path / "out", formats=("html", "csv"), n_boot=10)
    page = result.html.read_text()
    ranks = page[page.index('<section id="fig1b">') : page.index('<section id="fig3">')]
    header = ranks[ranks.index("<thead>") : ranks.index("</thead>")]
    assert header.count("<th") <= 7  # method, one column per panel, datasets
    csv = pd.read_csv(tmp_path / "out" / "ranks.csv", index_col=0)
    assert "rank overall" in csv.columns and "mSA overall" in csv.columns  # the numbers stay separate
    assert np.isfinite(csv.loc["apg", "rank overall"])
