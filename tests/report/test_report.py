"""End to end: classic and an oracle (ground truth scored with `evaluate`) on the built-in datasets, then the report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tifffile
from typer.testing import CliRunner

from apgbench.cli import app
from apgbench.datasets import load_dataset
from apgbench.evaluate import evaluate_predictions
from apgbench.report import build_report
from apgbench.results import load_scores
from apgbench.runner import run_benchmark

from .conftest import write_crafted, write_record

BUILTIN = ("synthetic-nuclei", "synthetic-cells", "synthetic-labelfree", "synthetic-histo")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """classic on two images of every built-in dataset, the oracle (the ground truth itself) on all of two."""
    root = tmp_path_factory.mktemp("results")
    for dataset in BUILTIN:
        run_benchmark(dataset, "classic", results_root=root, limit=2, show_progress=False)
    for dataset in BUILTIN[:2]:
        folder = tmp_path_factory.mktemp(f"oracle-{dataset}")
        for sample in load_dataset(dataset):
            tifffile.imwrite(folder / f"{sample.image_id}.tif", sample.labels.astype(np.uint32))
        evaluate_predictions(dataset, folder, "oracle", results_root=root)
    return root


@pytest.fixture(scope="module")
def report(results, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    return build_report(results, out, compare=("oracle", "classic"), n_boot=200)


def test_numbers_end_to_end(results, report):
    scores = load_scores(results)
    # classic ran on 2 of the 6 images of each dataset: the 4 it never ran count as 0 (issue 12, item 1)
    expected = scores[scores["error"].isna()].groupby(["dataset", "label"])["msa"].sum() / 6
    table = pd.read_csv(report.out / "msa_table.csv", index_col=[0, 1])
    assert list(table.columns) == ["classic", "oracle"]
    for (_domain, dataset), row in table.iterrows():
        assert row["classic"] == pytest.approx(expected[(dataset, "classic")], abs=1e-4)
    markdown = (report.out / "msa_table.md").read_text()
    assert (
        f"{table.iloc[0]['classic']:.3f}\\*" in markdown and "classic on synthetic-nuclei: 4 of 6" in markdown
    )
    assert table["oracle"].dropna().to_numpy() == pytest.approx(1.0)  # the upper bound
    assert table["oracle"].isna().sum() == 2
    summary = pd.read_csv(report.out / "summary.csv")
    assert (summary["ci_low"] <= summary["msa"] + 1e-9).all() and (
        summary["msa"] <= summary["ci_high"] + 1e-9
    ).all()
    assert summary.set_index(["dataset", "label"]).loc[("synthetic-nuclei", "oracle"), "n_images"] == 6
    ranks = pd.read_csv(report.out / "ranks.csv", index_col=0)
    # oracle ran on 2 of the 4 datasets: not ranked overall (issue 12, item 15); ranked where both ran
    assert np.isnan(ranks.loc["oracle", "rank overall"]) and ranks.loc["classic", "rank overall"] == 1
    assert ranks.loc["oracle", "rank nuclei-fluo"] == 1 and ranks.loc["oracle", "n_datasets"] == 2
    paired = pd.read_csv(report.out / "paired_oracle_vs_classic.csv").set_index("dataset")
    assert paired.loc["all", "n_images"] == 12 and paired.loc["all", "mean_difference"] > 0
    resources = pd.read_csv(report.out / "resources.csv", index_col=0)
    assert resources.loc["classic", "n_scored"] == 8 and resources.loc["classic", "seconds_per_image"] > 0


def test_partial_results_are_named(report):
    notes = " ".join(report.notes)
    assert "oracle on synthetic-labelfree" in notes and "oracle on synthetic-histo" in notes
    assert "classic on synthetic-nuclei is incomplete: 2 of 6" in notes
    coverage = pd.read_csv(report.out / "coverage.csv")
    assert set(coverage["n_expected"]) == {6} and not coverage.query("method == 'classic'")["complete"].any()


def test_all_outputs_written(report):
    names = {p.name for p in report.files}
    for stem in ("msa_table", "ranks", "paper_comparison", "sa_thresholds", "resources", "coverage"):
        assert {f"{stem}.md", f"{stem}.csv", f"{stem}.tex"} <= names
    for stem in (
        "fig2_nuclei-fluo",
        "fig2_cells-fluo",
        "fig2_cells-labelfree",
        "fig2_nuclei-histo",
        "fig1b_ranks",
        "sa_thresholds",
        "msa_intervals",
    ):
        assert {f"{stem}.png", f"{stem}.svg"} <= names
        assert (report.out / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert "<svg" in (report.out / f"{stem}.svg").read_text()[:2000]
    assert "qualitative.png" in names and "fig3_relative.png" not in names  # no apg/ais results here
    tex = (report.out / "msa_table.tex").read_text()
    assert r"\begin{tabular}" in tex and r"\textbf{1.000}" in tex and r"\emph{Nuclei (histopathology)}" in tex
    html = report.html.read_text()
    assert (
        html.count('<img src="data:image/png;base64,') == 4 + 1 + 1 + 1 + 1
    )  # fig2 x4, ranks, CIs, SA, qualitative
    assert "http://" not in html and "https://" not in html and "<script" not in html


def test_filters_formats_and_crafted_figures(tmp_path, config_dir):
    root = tmp_path / "results"
    write_crafted(root)
    write_record(
        root,
        "dsb",
        "apg",
        "nuclei-fluo",
        {"img-0": 0.1},
        errors={"img-1": "RuntimeError: boom"},
        run_key="p-0123456789",
    )
    out = tmp_path / "report"
    result = build_report(
        root,
        out,
        domains=["nuclei-fluo"],
        methods=["apg", "ais", "apg-bd"],
        formats=("csv", "png"),
        n_boot=100,
    )
    table = pd.read_csv(out / "msa_table.csv", index_col=[0, 1])
    assert list(table.columns) == ["ais", "apg-bd", "apg", "apg[p-0123456789]", "APG − AIS"]
    assert list(table.index.get_level_values(1)) == ["dsb", "u20s"]
    # one image at 0.1, one failed: the failure counts as 0 (issue 12, item 1)
    assert table.loc[("nuclei-fluo", "dsb"), "apg[p-0123456789]"] == pytest.approx(0.05)
    assert any("1 image(s) failed (counted as 0" in note for note in result.notes)
    old_view = build_report(
        root, tmp_path / "old", methods=["apg"], formats=("csv",), n_boot=10, exclude_failed=True
    )
    assert old_view.table.loc[("nuclei-fluo", "dsb"), "apg[p-0123456789]"] == pytest.approx(0.1)
    assert (out / "fig3_relative.png").exists() and not (out / "fig3_relative.svg").exists()
    assert not list(out.glob("*.md")) and result.html is None
    fig3 = pd.read_csv(out / "fig3_relative.csv", index_col=[0, 1])
    assert fig3.loc[("nuclei-fluo", "u20s"), "apg-bd"] == pytest.approx(-20.0, abs=1e-3)
    with pytest.raises(ValueError, match="Unknown report format"):
        build_report(root, out, formats=("pdf",))


def test_cli_report_options(tmp_path, config_dir, roots):
    root = tmp_path / "results"
    write_crafted(root)
    out = tmp_path / "r"
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "report",
            "--results-root",
            str(root),
            "--out",
            str(out),
            "--compare",
            "apg,ais",
            "--dataset",
            "dsb,u20s,synthetic-cells",
            "--format",
            "md,csv,html",
            "--images",
            "dsb",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "No results for dataset synthetic-cells" in result.output  # registered, not run: said, not refused
    assert "Qualitative figure: skipped dsb:img-0" in result.output  # not prepared here: said, not failed
    paired = pd.read_csv(out / "paired_apg_vs_ais.csv").set_index("dataset")
    assert paired.loc["dsb", "mean_difference"] == pytest.approx(0.05) and paired.loc["u20s", "ties"] == 2
    assert (out / "report.html").exists() and (out / "msa_table.md").exists() and not list(out.glob("*.png"))
    bad = runner.invoke(app, ["report", "--results-root", str(root), "--out", str(out), "--compare", "apg"])
    assert bad.exit_code == 1 and "two different methods" in bad.output


def test_records_of_different_data_versions_need_a_choice(tmp_path, config_dir):
    root = tmp_path / "results"
    write_record(root, "dsb", "ais", "nuclei-fluo", {"a": 0.5}, fingerprint="aaaa1111")
    write_record(root, "dsb", "apg", "nuclei-fluo", {"a": 0.7}, fingerprint="bbbb2222")
    runner = CliRunner()
    args = ["report", "--results-root", str(root), "--out", str(tmp_path / "r"), "--format", "csv"]
    refused = runner.invoke(app, args)
    assert refused.exit_code == 1 and "different prepared data" in refused.output
    chosen = runner.invoke(app, [*args, "--fingerprint", "dsb=bbbb"], catch_exceptions=False)
    assert chosen.exit_code == 0, chosen.output
    assert list(pd.read_csv(tmp_path / "r" / "msa_table.csv", index_col=[0, 1]).columns) == ["apg"]
