"""Reports built from the results store: the paper's Fig. 1b, 2, 3 (and more) as tables, plots and one HTML page.

Everything is computed from the per-image scores of :func:`apgbench.results.load_scores`. Means follow the
paper: an image's mSA, averaged over a dataset's images (failed images and images with empty ground truth
excluded), then over a domain's datasets with each dataset weighing the same.

Files written to ``out`` (``formats`` chooses among md, csv, tex, png, svg, html):

=====================  ============================================================================
msa_table.*            Fig. 2 table: mSA per dataset x method, top three, trained-on marks, APG - AIS
summary.csv            per (dataset, method): mSA, bootstrap 95% interval, images, failures, time, memory
fig2_<domain>.png/svg  Fig. 2 grouped bars per domain
ranks.*, fig1b_ranks   Fig. 1b: average rank and mean mSA per domain and overall
fig3_relative.*        Fig. 3: relative mSA difference of apg / apg-bd to ais (%)
paper_comparison.*     our mSA beside the paper's (``apgbench/data/paper_msa.csv``) and the difference
sa_thresholds.*        SA at IoU 0.50 ... 0.95 per method and domain
msa_intervals.png/svg  mSA with bootstrap 95% intervals
paired_<a>_vs_<b>.*    paired comparison of two methods on their common images (Wilcoxon + bootstrap)
resources.*            seconds per image and peak memory per method
coverage.*             images expected / scored / failed per record
qualitative.png        Fig. 1c: images with each method's contours
report.html            all of the above on one self-contained page
=====================  ============================================================================
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
from rich.table import Table

from ..results import load_scores
from . import plots
from .coverage import coverage_table, missing_notes
from .formats import TABLE_FORMATS, frame_to_html, write_table
from .html import Section, render_page
from .paper import paper_comparison, paper_table
from .qualitative import parse_selection, qualitative_figure
from .stats import (N_BOOT, average_ranks, domain_means, msa_intervals, paired_test, relative_difference,
                    resources_table, threshold_curves)
from .tables import (DOMAIN_TITLES, MARKS, TRAINED, fig2_csv_table, format_html, format_latex, format_markdown,
                     long_summary, msa_table, ranks, scorable, trained_marks)

__all__ = ["ALL_FORMATS", "ReportResult", "build_report", "load_filtered_scores"]

ALL_FORMATS = ("md", "csv", "tex", "png", "svg", "html")


@dataclass
class ReportResult:
    """What :func:`build_report` wrote and what it wants to tell the user."""

    out: Path
    files: list[Path]
    table: pd.DataFrame
    terminal_table: Table
    notes: list[str] = field(default_factory=list)
    html: Path | None = None


def load_filtered_scores(results_root: str | os.PathLike, *, domains=(), datasets=(), methods=()) -> pd.DataFrame:
    """Per-image scores under ``results_root`` restricted to the given domains, datasets and methods.

    A method filter matches the method id (all its parameter variants) or one exact label (``apg[p-1a2b]``).
    """
    scores = load_scores(results_root)
    for column, allowed in (("domain", domains), ("dataset", datasets)):
        if allowed:
            scores = scores[scores[column].isin(list(allowed))]
    if methods:
        scores = scores[scores["method"].isin(list(methods)) | scores["label"].isin(list(methods))]
    return scores


def build_report(results_root: str | os.PathLike, out: str | os.PathLike, *, domains=(), datasets=(), methods=(),
                 compare: tuple[str, str] | None = None, formats=ALL_FORMATS, images=None,
                 data_root: str | os.PathLike | None = None, seed: int = 0, n_boot: int = N_BOOT) -> ReportResult:
    """Write the report's tables, plots and HTML page to ``out`` from the stored results.

    Parameters
    ----------
    results_root, out : path
        The results store to read and the folder to write.
    domains, datasets, methods : sequence of str
        Filters (empty = all).
    compare : (str, str), optional
        Two method labels for the paired test; default ``("apg", "ais")`` when both have results.
    formats : sequence of str
        Which of ``md, csv, tex, png, svg, html`` to write.
    images : list of str, optional
        Images for the qualitative figure, as ``dataset:image_id`` or ``dataset``; default one per domain.
    data_root : path, optional
        Dataset cache, to load the images of the qualitative figure.
    seed, n_boot : int
        Seed and number of bootstrap resamples for the confidence intervals.

    Returns
    -------
    ReportResult
        A report on partial results says in ``notes`` what is missing instead of failing.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    unknown = set(formats) - set(ALL_FORMATS)
    if unknown:
        raise ValueError(f"Unknown report format(s) {sorted(unknown)}; choose from {', '.join(ALL_FORMATS)}.")
    scores = load_filtered_scores(results_root, domains=domains, datasets=datasets, methods=methods)
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        valid = scorable(scores)
        table = msa_table(scores)
    notes.extend(str(w.message) for w in caught)
    if scores.empty:
        notes.append(f"No results found under {results_root}" + (" for these filters" if domains or datasets
                                                                   or methods else "") + "; run `apgbench run` first.")
    coverage = coverage_table(results_root, scores)
    notes.extend(missing_notes(table, coverage, scores=scores,
                               requested={"domain": tuple(domains), "dataset": tuple(datasets), "method": tuple(methods)}))

    table_formats = [f for f in formats if f in TABLE_FORMATS]
    plot_formats = [f for f in formats if f in ("png", "svg")]
    files: list[Path] = []
    sections: list[Section] = []

    # Fig. 2: the table and one bar chart per domain
    trained = trained_marks(table) if not table.empty else pd.DataFrame()
    paper_same_layout = paper_table(table.index, list(table.columns)) if not table.empty else None
    files += write_table(fig2_csv_table(table), out, "msa_table", title="Mean segmentation accuracy (mSA)",
                         formats=table_formats, markdown=format_markdown(table), latex=format_latex(table))
    fig2 = Section("fig2", "Fig. 2 — mSA per dataset and method",
                   f"Mean over each dataset's images. Shaded: top three per dataset ({''.join(MARKS.values())}); "
                   f"{TRAINED}: the method was trained on this dataset's training split; last column: APG − AIS. "
                   "Hover a cell for the paper's value.",
                   [format_html(table, paper=paper_same_layout)], grid=True)
    for domain in dict.fromkeys(table.index.get_level_values(0)) if not table.empty else []:
        written, png = plots.save_figure(plots.fig2_domain(table, domain, trained), out, f"fig2_{domain}", plot_formats)
        files += written
        fig2.figures.append((f"Fig. 2, {DOMAIN_TITLES.get(domain, domain)}: numbers above bars are ranks 1-3; "
                             "faded bars are not in the top three; hatched: trained on this dataset.", png))
    sections.append(fig2)

    # Fig. 1b: average ranks
    intervals = msa_intervals(valid, seed=seed, n_boot=n_boot)
    avg = average_ranks(table)
    means = domain_means(table)
    rank_section = Section("fig1b", "Fig. 1b — average rank per domain and overall",
                           "Rank of each method on each dataset (1 = best), averaged over the datasets of a domain; "
                           "beside it the mean mSA over those datasets.")
    if not avg.empty:
        rank_table = _rank_table(avg, means)
        files += write_table(rank_table, out, "ranks", title="Average rank (mean mSA) per domain", formats=table_formats)
        rank_section.tables.append(frame_to_html(rank_table))
        written, png = plots.save_figure(plots.fig1b_ranks(means, avg), out, "fig1b_ranks", plot_formats)
        files += written
        rank_section.figures.append(("Mean mSA per domain; in brackets the average rank. Blue: the three best "
                                     "average ranks.", png))
    sections.append(rank_section)

    # Fig. 3: APG variants relative to AIS
    relative = relative_difference(table)
    fig3 = Section("fig3", "Fig. 3 — APG variants relative to AIS",
                   "100 × (variant − AIS) / AIS per dataset; apg = prompts from connected components, apg-bd = "
                   "prompts from boundary-distance maxima.")
    if not relative.empty:
        files += write_table(relative, out, "fig3_relative", title="Relative mSA difference to AIS (%)",
                             formats=table_formats, digits=1)
        fig3.tables.append(frame_to_html(relative, digits=1))
        written, png = plots.save_figure(plots.fig3_relative(relative), out, "fig3_relative", plot_formats)
        files += written
        fig3.figures.append(("Relative mSA difference to AIS (%), per domain.", png))
    else:
        fig3.intro += " Needs results of ais and apg or apg-bd on the same datasets."
    sections.append(fig3)

    # The paper's numbers beside ours
    comparison = paper_comparison(table, intervals)
    files += write_table(comparison, out, "paper_comparison", title="Our mSA and the paper's", formats=table_formats)
    sections.append(Section("paper", "Paper vs. this run",
                            "The paper's published mSA (default settings, see apgbench.report.paper) and ours - "
                            "paper; paper_in_ci: the paper's value lies in our bootstrap 95% interval.",
                            [frame_to_html(comparison)]))

    # Beyond the paper
    summary = long_summary(scores) if not scores.empty else pd.DataFrame()
    if not summary.empty:
        summary = summary.merge(intervals.rename(columns={"method": "label"})[["dataset", "label", "ci_low", "ci_high"]],
                                how="left", on=["dataset", "label"])
    if "csv" in formats:
        summary.to_csv(out / "summary.csv", index=False, float_format="%.4f")
        files.append(out / "summary.csv")
    ci_section = Section("intervals", "Bootstrap 95% intervals", "Percentile bootstrap over images "
                         f"({n_boot} resamples, seed {seed}).", [frame_to_html(intervals)])
    if not intervals.empty:
        written, png = plots.save_figure(plots.interval_plot(intervals), out, "msa_intervals", plot_formats)
        files += written
        ci_section.figures.append(("mSA with bootstrap 95% interval per dataset and method.", png))
    sections.append(ci_section)

    curves = threshold_curves(valid)
    curve_section = Section("thresholds", "Accuracy per IoU threshold",
                            "SA(t) at t = 0.50 … 0.95: dataset means, averaged over each domain's datasets.")
    if not curves.empty:
        wide = curves.pivot_table(index=["domain", "method"], columns="threshold", values="sa", sort=False)
        wide.columns = [f"{t:.2f}" for t in wide.columns]
        files += write_table(wide, out, "sa_thresholds", title="Segmentation accuracy per IoU threshold",
                             formats=table_formats)
        curve_section.tables.append(frame_to_html(wide))
        written, png = plots.save_figure(plots.threshold_plot(curves), out, "sa_thresholds", plot_formats)
        files += written
        curve_section.figures.append(("SA against the IoU threshold per domain.", png))
    sections.append(curve_section)

    labels = set(valid["label"]) if not valid.empty else set()
    if compare is None and {"apg", "ais"} <= labels:
        compare = ("apg", "ais")
    if compare is not None:
        first, second = compare
        paired = paired_test(valid, first, second, seed=seed, n_boot=n_boot)
        if paired.empty:
            notes.append(f"Paired test {first} vs {second}: no images scored by both.")
        files += write_table(paired, out, f"paired_{first}_vs_{second}", formats=table_formats,
                             title=f"Paired comparison {first} − {second} (mSA per image)")
        sections.append(Section("paired", f"Paired test: {first} vs. {second}",
                                f"Per image: mSA({first}) − mSA({second}) on images both scored; mean with bootstrap "
                                "95% interval; two-sided Wilcoxon signed-rank p-value; wins/ties/losses of "
                                f"{first}.", [frame_to_html(paired, digits=4)]))

    resources = resources_table(scores)
    files += write_table(resources, out, "resources", title="Time and memory per method", formats=table_formats, digits=2)
    files += write_table(coverage, out, "coverage", title="Images per record", formats=table_formats)
    sections.append(Section("resources", "Time, memory and images scored",
                            "Seconds per image (wall clock of segment()), peak resident memory of the run's process "
                            "(MiB), images scored and failed.", [frame_to_html(resources, digits=2),
                                                                  frame_to_html(coverage)]))

    figure, qual_notes = qualitative_figure(results_root, valid, parse_selection(images or []), data_root=data_root)
    notes.extend(qual_notes)
    qual = Section("qualitative", "Qualitative results (Fig. 1c)",
                   "Each object's contour in its own colour; the title gives the image's mSA.")
    if figure is not None:
        written, png = plots.save_figure(figure, out, "qualitative", [f for f in plot_formats if f == "png"], dpi=130)
        files += written
        qual.figures.append(("Images with the ground truth's and each method's contours.", png))
    sections.append(qual)

    html_path = None
    if "html" in formats:
        meta = (f"Results root <code>{results_root}</code> · {len(table)} dataset(s) · {len(table.columns)} "
                f"method(s) · {len(valid)} scored image results · generated "
                f"{datetime.now(timezone.utc).isoformat(timespec='seconds')}")
        html_path = out / "report.html"
        html_path.write_text(render_page("apgbench report", meta, notes, sections), encoding="utf-8")
        files.append(html_path)
    return ReportResult(out, files, table, _terminal_table(table), notes, html_path)


def _rank_table(avg: pd.DataFrame, means: pd.DataFrame) -> pd.DataFrame:
    """Average rank and mean mSA side by side, one row per method, best overall rank first."""
    panels = [c for c in avg.columns if c != "n_datasets"]
    frame = pd.DataFrame(index=avg.index)
    for panel in panels:
        frame[f"rank {panel}"] = avg[panel]
        frame[f"mSA {panel}"] = means[panel].reindex(avg.index)
    frame["n_datasets"] = avg["n_datasets"]
    frame.index.name = "method"
    return frame


def _terminal_table(table: pd.DataFrame) -> Table:
    rich_table = Table(title="Mean segmentation accuracy (mSA); ¹²³ = top three per dataset, † = trained on it")
    rich_table.add_column("domain")
    rich_table.add_column("dataset")
    if table.empty:
        return rich_table
    rank, trained = ranks(table), trained_marks(table)
    for method in table.columns:
        rich_table.add_column(method, justify="right")
    for domain, dataset in table.index:
        cells = []
        for method in table.columns:
            value, r = table.loc[(domain, dataset), method], rank.loc[(domain, dataset), method]
            if pd.isna(value):
                cells.append("–")
                continue
            text = f"{value:.3f}{MARKS.get(int(r), '')}{TRAINED if trained.loc[(domain, dataset), method] else ''}"
            style = {1: "bold green", 2: "green", 3: "cyan"}.get(int(r))
            cells.append(f"[{style}]{text}[/]" if style else text)
        rich_table.add_row(DOMAIN_TITLES.get(domain, domain), dataset, *cells)
    return rich_table
