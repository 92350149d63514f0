"""Reports built from the results store: the paper's Fig. 1b, 2, 3 (and more) as tables, plots and one HTML page.

Everything is computed from the per-image scores of :func:`apgbench.results.load_scores`. Means follow the
paper: an image's mSA, averaged over all of a dataset's test images (images with empty ground truth
excluded), then over a domain's datasets with each dataset weighing the same. An image that failed or was
never run counts as 0 (the cell is marked ``*``, a footnote gives the count), so a shortfall never looks
better than the work behind it; ``exclude_failed`` gives means over the scored images only.

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
volumes_msa.*          3D sets: mode, 3D mSA and slice-wise mSA per method (report/volumes.py)
volumes_ranks.*        3D sets: average rank (3D mSA) per domain and overall
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
from html import escape  # not `import html`: the submodule .html takes that name in this package
from pathlib import Path

import pandas as pd
from rich.markup import escape as escape_markup
from rich.table import Table

from ..errors import InvalidInputError
from ..results import load_scores
from . import plots
from .coverage import coverage_table, missing_notes
from .formats import TABLE_FORMATS, frame_to_html, write_table
from .html import Section, render_page
from .paper import difference_html, paper_comparison, paper_summary, paper_table
from .qualitative import parse_selection, qualitative_figure
from .stats import (
    N_BOOT,
    average_ranks,
    coverage_notes,
    domain_means,
    msa_intervals,
    paired_test,
    relative_difference,
    resources_table,
    threshold_curves,
)
from .tables import (
    DOMAIN_TITLES,
    FAILED_MARK,
    MARKS,
    TRAINED,
    apg_minus_ais,
    counted_scores,
    fig2_csv_table,
    format_html,
    format_latex,
    format_markdown,
    long_summary,
    msa_table,
    ranks,
    trained_marks,
    zeroed_counts,
)
from .volumes import split_volumetric, volume_section

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


def load_filtered_scores(
    results_root: str | os.PathLike,
    *,
    domains=(),
    datasets=(),
    methods=(),
    fingerprints: dict[str, str] | None = None,
    problems: list | None = None,
) -> pd.DataFrame:
    """Per-image scores under ``results_root`` restricted to the given domains, datasets and methods.

    A method filter matches the method id (all its parameter variants) or one exact label (``apg[p-1a2b]``);
    ``fingerprints`` (dataset id -> fingerprint prefix) picks one version of a dataset's prepared data where
    records were computed on several (see :func:`apgbench.results.load_scores`, which also explains
    ``problems``).
    """
    scores = load_scores(results_root, fingerprints=fingerprints, problems=problems)
    for column, allowed in (("domain", domains), ("dataset", datasets)):
        if allowed:
            scores = scores[scores[column].isin(list(allowed))]
    if methods:
        scores = scores[scores["method"].isin(list(methods)) | scores["label"].isin(list(methods))]
    return scores


def build_report(
    results_root: str | os.PathLike,
    out: str | os.PathLike,
    *,
    domains=(),
    datasets=(),
    methods=(),
    compare: tuple[str, str] | None = None,
    formats=ALL_FORMATS,
    images=None,
    data_root: str | os.PathLike | None = None,
    seed: int = 0,
    n_boot: int = N_BOOT,
    fingerprints: dict[str, str] | None = None,
    exclude_failed: bool = False,
) -> ReportResult:
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
    fingerprints : dict, optional
        Dataset id -> fingerprint prefix, for datasets whose records come from different prepared data.
    exclude_failed : bool
        Leave failed and missing images out of the means (by default they count as 0, marked ``*``).

    Returns
    -------
    ReportResult
        A report on partial results says in ``notes`` what is missing instead of failing; so does one on
        a results root holding unreadable records (each named with the command that repairs it).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    unknown = set(formats) - set(ALL_FORMATS)
    if unknown:
        raise InvalidInputError(
            f"Unknown report format(s) {sorted(unknown)}; choose from {', '.join(ALL_FORMATS)}."
        )
    problems: list = []
    scores = load_filtered_scores(
        results_root,
        domains=domains,
        datasets=datasets,
        methods=methods,
        fingerprints=fingerprints,
        problems=problems,
    )
    notes: list[str] = [f"Unreadable record: {problem}" for problem in problems]
    scores, volume_scores = split_volumetric(scores)  # 3D sets get their own section (report/volumes.py)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        valid = counted_scores(scores, exclude_failed=exclude_failed)
        table = msa_table(scores, exclude_failed=exclude_failed)
    notes.extend(dict.fromkeys(str(w.message) for w in caught))
    if scores.empty and volume_scores.empty:
        filtered = " for these filters" if domains or datasets or methods else ""
        notes.append(f"No results found under {results_root}{filtered}; run `apgbench run` first.")
    coverage = coverage_table(results_root, scores)
    requested = {"domain": tuple(domains), "dataset": tuple(datasets), "method": tuple(methods)}
    notes.extend(
        missing_notes(table, coverage, scores=scores, requested=requested, exclude_failed=exclude_failed)
    )
    notes.extend(coverage_notes(table))

    output = _Output(
        out,
        [f for f in formats if f in TABLE_FORMATS],
        [f for f in formats if f in ("png", "svg")],
        "html" in formats,
    )
    intervals = msa_intervals(valid, seed=seed, n_boot=n_boot)
    sections = [
        _fig2_section(output, table),
        _rank_section(output, table),
        _fig3_section(output, table),
        _paper_section(output, table, intervals),
    ]
    summary = long_summary(scores, valid) if not scores.empty else pd.DataFrame()
    if not summary.empty:
        ci = intervals.rename(columns={"method": "label"})[["dataset", "label", "ci_low", "ci_high"]]
        summary = summary.merge(ci, how="left", on=["dataset", "label"])
    if "csv" in formats:
        summary.to_csv(out / "summary.csv", index=False, float_format="%.6g")
        output.files.append(out / "summary.csv")
    sections += [_interval_section(output, intervals, seed, n_boot), _threshold_section(output, valid)]
    if compare is None and not valid.empty and {"apg", "ais"} <= set(valid["label"]):
        compare = ("apg", "ais")
    if compare is not None:
        section, note = _paired_section(output, valid, compare, seed, n_boot)
        sections.append(section)
        notes.extend(note)
    sections.append(_resources_section(output, scores, coverage))
    section, note = volume_section(
        output, volume_scores, results_root, data_root, exclude_failed=exclude_failed
    )
    sections.append(section)
    notes.extend(note)
    section, note = _qualitative_section(
        output, results_root, valid[~valid["zeroed"].astype(bool)], images, data_root
    )
    sections.append(section)
    notes.extend(note)

    html_path = None
    if "html" in formats:
        meta = (
            f"Results root <code>{escape(str(results_root))}</code> · {len(table)} dataset(s) · "
            f"{len(table.columns)} method(s) · {int((~valid['zeroed'].astype(bool)).sum())} scored image results"
            " · generated "
            f"{datetime.now(timezone.utc).isoformat(timespec='seconds')}"
        )
        html_path = out / "report.html"
        html_path.write_text(render_page("apgbench report", meta, notes, sections), encoding="utf-8")
        output.files.append(html_path)
    return ReportResult(out, output.files, table, _terminal_table(table), notes, html_path)


@dataclass
class _Output:
    """Where and in which formats tables and figures go; collects the paths written."""

    out: Path
    table_formats: list[str]
    plot_formats: list[str]
    page: bool
    files: list[Path] = field(default_factory=list)

    def table(self, frame: pd.DataFrame, stem: str, title: str, **kwargs) -> str:
        self.files += write_table(frame, self.out, stem, title=title, formats=self.table_formats, **kwargs)
        return frame_to_html(frame, digits=kwargs.get("digits", 3))

    def figure(
        self, section: Section, caption: str, make, stem: str, *, raster_only: bool = False, dpi: int = 150
    ) -> None:
        """Build the figure with ``make()`` (only if a plot format or the page wants it), save, add to section."""
        if not self.plot_formats and not self.page:
            return
        formats = [f for f in self.plot_formats if f == "png" or not raster_only]
        written, png = plots.save_figure(make(), self.out, stem, formats, dpi=dpi)
        self.files += written
        section.figures.append((caption, png))


def _fig2_section(output: _Output, table: pd.DataFrame) -> Section:
    paper = paper_table(table.index, list(table.columns)) if not table.empty else None
    output.table(
        fig2_csv_table(table),
        "msa_table",
        "Mean segmentation accuracy (mSA)",
        markdown=format_markdown(table),
        latex=format_latex(table),
    )
    intro = (
        f"Mean over each dataset's images. Shaded: top three per dataset ({''.join(MARKS.values())}); "
        f"{TRAINED}: the method was trained on this dataset's training split; {FAILED_MARK}: failed or "
        "missing images counted as 0 (footnote)."
    )
    if apg_minus_ais(table) is not None:  # say only what the table shows
        intro += " Last column: APG − AIS."
    if paper is not None and paper.notna().any().any():
        intro += " Hover a value for the paper's."
    section = Section(
        "fig2",
        "Fig. 2 — mSA per dataset and method",
        intro,
        [format_html(table, paper=paper)],
        # two plots per row only while they are small; 9 datasets per domain need the full width
        grid=not table.empty and table.groupby(level=0).size().max() <= 3,
    )
    if table.empty:
        return section
    trained = trained_marks(table)
    caption = (
        "numbers above bars are ranks 1-3; faded bars are not in the top three; "
        "hatched: trained on this dataset."
    )
    for domain in dict.fromkeys(table.index.get_level_values(0)):
        output.figure(
            section,
            f"Fig. 2, {DOMAIN_TITLES.get(domain, domain)}: {caption}",
            lambda d=domain: plots.fig2_domain(table, d, trained),
            f"fig2_{domain}",
        )
    return section


def _rank_section(output: _Output, table: pd.DataFrame) -> Section:
    section = Section(
        "fig1b",
        "Fig. 1b — average rank per domain and overall",
        "Rank of each method on each dataset (1 = best), averaged over the datasets of a domain; "
        "beside it the mean mSA over those datasets.",
    )
    avg, means = average_ranks(table), domain_means(table)
    if not avg.empty and avg["overall"].isna().any():
        section.intro += (
            " Ranks and means are over the datasets every ranked method has results on (overall: "
            f"{len(avg.attrs['overall_datasets'])} datasets); a method lacking some is not ranked there "
            "(–); the datasets column gives each method's coverage."
        )
    if avg.empty:
        section.tables.append(NO_DATA % "no results yet")
        return section
    output.table(_rank_table(avg, means), "ranks", "Average rank (mean mSA) per domain")
    section.tables.append(frame_to_html(_compact_rank_table(avg, means)))  # fits the page: one cell per panel
    output.figure(
        section,
        "Mean mSA per domain, methods ordered by average rank (beside each bar: mean mSA and "
        "average rank). Blue: the three best average ranks.",
        lambda: plots.fig1b_ranks(means, avg),
        "fig1b_ranks",
    )
    return section


def _fig3_section(output: _Output, table: pd.DataFrame) -> Section:
    section = Section(
        "fig3",
        "Fig. 3 — APG variants relative to AIS",
        "100 × (variant − AIS) / AIS per dataset; apg = prompts from connected components, apg-bd = "
        "prompts from boundary-distance maxima.",
    )
    relative = relative_difference(table)
    if relative.empty:
        section.tables.append(NO_DATA % "needs results of ais and of apg or apg-bd on the same datasets")
        return section
    long = output.table(relative, "fig3_relative", "Relative mSA difference to AIS (%)", digits=1)
    section.details.append(("Table of relative differences", long))
    output.figure(
        section,
        "Relative mSA difference to AIS (%), per domain; the means over each domain's datasets "
        "in the panel titles.",
        lambda: plots.fig3_relative(relative),
        "fig3_relative",
    )
    return section


def _paper_section(output: _Output, table: pd.DataFrame, intervals: pd.DataFrame) -> Section:
    comparison = paper_comparison(table, intervals)
    long = output.table(comparison, "paper_comparison", "Our mSA and the paper's")
    summary = paper_summary(comparison)
    return Section(
        "paper",
        "Paper vs. this run",
        "Ours − the paper's published mSA (default settings; mapping in apgbench.report.paper); "
        "coloured where they differ by more than 0.02, hover a cell for both values. paper_in_ci: "
        "share of datasets where the paper's value lies in our bootstrap 95% interval.",
        [frame_to_html(summary), difference_html(comparison)],
        details=[("All compared values", long)] if not comparison.empty else [],
    )


def _interval_section(output: _Output, intervals: pd.DataFrame, seed: int, n_boot: int) -> Section:
    section = Section(
        "intervals",
        "Bootstrap 95% intervals",
        f"Percentile bootstrap over images ({n_boot} resamples, seed {seed}).",
        details=[("Table of intervals", frame_to_html(intervals))] if not intervals.empty else [],
    )
    if intervals.empty:
        section.tables.append(NO_DATA % "no results yet")
    else:
        output.figure(
            section,
            "mSA with bootstrap 95% interval per dataset and method.",
            lambda: plots.interval_plot(intervals),
            "msa_intervals",
        )
    return section


def _threshold_section(output: _Output, valid: pd.DataFrame) -> Section:
    section = Section(
        "thresholds",
        "Accuracy per IoU threshold",
        "SA(t) at t = 0.50 … 0.95: dataset means, averaged over each domain's datasets.",
    )
    curves = threshold_curves(valid)
    if curves.empty:
        section.tables.append(NO_DATA % "no results yet")
        return section
    wide = curves.pivot_table(index=["domain", "method"], columns="threshold", values="sa", sort=False)
    wide.columns = [f"{t:.2f}" for t in wide.columns]
    section.tables.append(output.table(wide, "sa_thresholds", "Segmentation accuracy per IoU threshold"))
    output.figure(
        section,
        "SA against the IoU threshold per domain.",
        lambda: plots.threshold_plot(curves),
        "sa_thresholds",
    )
    return section


def _paired_section(output: _Output, valid, compare, seed: int, n_boot: int) -> tuple[Section, list[str]]:
    first, second = compare
    paired = paired_test(valid, first, second, seed=seed, n_boot=n_boot)
    notes = [f"Paired test {first} vs {second}: no images scored by both."] if paired.empty else []
    body = output.table(
        paired,
        f"paired_{first}_vs_{second}",
        f"Paired comparison {first} − {second} (mSA per image)",
        digits=4,
    )
    return Section(
        "paired",
        f"Paired test: {first} vs. {second}",
        f"Per image: mSA({first}) − mSA({second}) on the images both scored; mean with bootstrap 95% "
        f"interval; two-sided Wilcoxon signed-rank p-value; wins/ties/losses of {first}.",
        [body],
    ), notes


def _resources_section(output: _Output, scores: pd.DataFrame, coverage: pd.DataFrame) -> Section:
    return Section(
        "resources",
        "Time, memory and images scored",
        "Seconds per image (wall clock of segment()), peak resident memory of the run's process (MiB), "
        "images expected, scored and failed per record.",
        [output.table(resources_table(scores), "resources", "Time and memory per method", digits=2)],
        details=[("Images per record", output.table(coverage, "coverage", "Images per record"))],
    )


def _qualitative_section(
    output: _Output, results_root, valid, images, data_root
) -> tuple[Section, list[str]]:
    section = Section(
        "qualitative",
        "Qualitative results (Fig. 1c)",
        "Each object's contour in its own colour; the title gives the image's mSA.",
    )
    if "png" not in output.plot_formats and not output.page:
        return section, []
    figure, notes = qualitative_figure(
        results_root, valid, parse_selection(images or []), data_root=data_root
    )
    if figure is not None:
        output.figure(
            section,
            "Images with the ground truth's and each method's contours.",
            lambda: figure,
            "qualitative",
            raster_only=True,
            dpi=130,
        )
    return section, notes


NO_DATA = '<p class="nodata">No data: %s.</p>'


def _compact_rank_table(avg: pd.DataFrame, means: pd.DataFrame) -> pd.DataFrame:
    """For the page: per panel one cell "average rank (mean mSA)", short headers, so it fits 1400 px."""
    frame = pd.DataFrame(index=avg.index)
    for panel in [c for c in avg.columns if c != "n_datasets"]:
        title = "Overall" if panel == "overall" else DOMAIN_TITLES.get(panel, panel)
        frame[f"{title}: rank (mSA)"] = [
            "–" if pd.isna(r) else f"{r:.2f} ({m:.3f})"
            for r, m in zip(avg[panel], means[panel].reindex(avg.index))
        ]
    frame["datasets"] = avg["n_datasets"]
    frame.index.name = "method"
    return frame


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
    rich_table = Table(
        title="Mean segmentation accuracy (mSA); ¹²³ = top three per dataset, † = trained on it, "
        f"{FAILED_MARK} = failed or missing images counted as 0"
    )
    rich_table.add_column("domain")
    rich_table.add_column("dataset")
    if table.empty:
        return rich_table
    rank, trained = ranks(table), trained_marks(table)
    zeroed, _ = zeroed_counts(table)
    for method in table.columns:
        rich_table.add_column(escape_markup(method), justify="right")  # labels like "apg[p-...]"
    for domain, dataset in table.index:
        cells = []
        for method in table.columns:
            value, r = table.loc[(domain, dataset), method], rank.loc[(domain, dataset), method]
            if pd.isna(value):
                cells.append("–")
                continue
            text = (
                f"{value:.3f}{FAILED_MARK if zeroed.loc[(domain, dataset), method] else ''}"
                f"{MARKS.get(int(r), '')}{TRAINED if trained.loc[(domain, dataset), method] else ''}"
            )
            style = {1: "bold green", 2: "green", 3: "cyan"}.get(int(r))
            cells.append(f"[{style}]{text}[/]" if style else text)
        rich_table.add_row(DOMAIN_TITLES.get(domain, domain), dataset, *cells)
    return rich_table
