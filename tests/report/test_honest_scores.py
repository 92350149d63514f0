"""Scores never look better than the work behind them (issue 12, items 1, 4 and 15).

Failed and missing images count as 0, damaged records are named with their repair instead of stopping the
report, identical per-image scores get identical intervals, and ranks say over which datasets they run.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from apgbench.cli import app
from apgbench.report import build_report, load_filtered_scores
from apgbench.report.stats import average_ranks, msa_intervals
from apgbench.report.tables import counted_scores, format_html, format_latex, format_markdown, msa_table
from apgbench.results import CorruptRecordError, load_scores

from .conftest import write_record


def test_failures_count_against_the_method(tmp_path, config_dir):
    """A method failing on 3 of 6 images no longer scores above one that succeeded on all six."""
    root = tmp_path / "results"
    ids = [f"i{k}" for k in range(6)]
    write_record(root, "dsb", "ais", "nuclei-fluo", dict.fromkeys(ids, 0.6))
    write_record(
        root,
        "dsb",
        "apg",
        "nuclei-fluo",
        dict.fromkeys(ids[:3], 0.9),
        errors=dict.fromkeys(ids[3:], "RuntimeError: out of memory"),
    )
    scores = load_filtered_scores(root)
    table = msa_table(scores)
    assert table.loc[("nuclei-fluo", "dsb"), "apg"] == pytest.approx(0.45)  # (3 x 0.9 + 3 x 0) / 6
    assert table.loc[("nuclei-fluo", "dsb"), "ais"] == pytest.approx(0.6)
    assert average_ranks(table).index[0] == "ais"
    assert "0.450\\*" in format_markdown(table) and "apg on dsb: 3 of 6" in format_markdown(table)
    assert "0.450*" in format_html(table) and r"0.450}$^{*}$" in format_latex(table)
    assert "0.600*" not in format_html(table)
    old = msa_table(scores, exclude_failed=True)  # `report --exclude-failed`: the previous view
    assert old.loc[("nuclei-fluo", "dsb"), "apg"] == pytest.approx(0.9)


def test_missing_images_count_and_take_ids_from_other_records(tmp_path, config_dir):
    root = tmp_path / "results"
    write_record(root, "dsb", "ais", "nuclei-fluo", {"a": 0.5, "b": 0.5, "c": 0.5, "d": 0.5})
    write_record(root, "dsb", "apg", "nuclei-fluo", {"a": 1.0}, n_images=4)  # 3 of 4 never run
    write_record(root, "tissuenet", "apg", "cells-fluo", {"x": 0.8}, n_images=3)  # nobody knows the others
    counted = counted_scores(load_filtered_scores(root))
    apg = counted[(counted["label"] == "apg") & (counted["dataset"] == "dsb")]
    assert sorted(apg["image_id"]) == ["a", "b", "c", "d"] and apg["zeroed"].sum() == 3
    other = counted[counted["dataset"] == "tissuenet"]
    assert len(other) == 3 and other["msa"].sum() == pytest.approx(0.8)
    assert set(other["image_id"]) == {"x", "<missing-apg-1>", "<missing-apg-2>"}
    table = msa_table(load_filtered_scores(root))
    assert table.loc[("nuclei-fluo", "dsb"), "apg"] == pytest.approx(0.25)


def test_empty_ground_truth_stays_excluded(tmp_path, config_dir):
    root = tmp_path / "results"
    write_record(root, "dsb", "ais", "nuclei-fluo", {"a": 0.5, "b": 0.7})
    scores = load_filtered_scores(root)
    scores.loc[scores["image_id"] == "b", ["n_true", "msa"]] = [0, 0.0]
    with pytest.warns(UserWarning, match="empty ground truth"):
        assert msa_table(scores).loc[("nuclei-fluo", "dsb"), "ais"] == pytest.approx(0.5)


def test_evaluate_with_half_the_files_does_not_say_perfect(roots, tmp_path):
    """`evaluate` with 4 of 8 prediction files: the missing 4 count as 0, not mSA 1.000."""
    import tifffile

    from apgbench.datasets import load_dataset

    folder = tmp_path / "half"
    folder.mkdir()
    samples = list(load_dataset("synthetic-cells"))
    for sample in samples[: len(samples) // 2]:
        tifffile.imwrite(folder / f"{sample.image_id}.tif", sample.labels.astype(np.uint32))
    result = CliRunner().invoke(
        app,
        ["evaluate", "-d", "synthetic-cells", "--predictions", str(folder), "--name", "half-oracle"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "mSA 1.000" not in result.output
    expected = (len(samples) // 2) / len(samples)
    assert f"mSA {expected:.3f}" in result.output


def _two_records(root):
    write_record(root, "dsb", "ais", "nuclei-fluo", {"a": 0.5, "b": 0.6})
    return write_record(root, "dsb", "apg", "nuclei-fluo", {"a": 0.7, "b": 0.8})


@pytest.mark.parametrize("damage", ["scores.csv", "run.json", "journal", "altered", "garbled run.json"])
def test_damaged_record_is_named_with_its_repair_and_the_report_goes_on(tmp_path, config_dir, damage):
    root = tmp_path / "results"
    directory = _two_records(root)
    if damage == "journal":
        (directory / ".commit.json").write_text('{"replace": [["x", ')
        named = directory / ".commit.json"
    elif damage == "garbled run.json":
        (directory / "run.json").write_bytes(b"\xff\xfe{ not json")
        named = directory / "run.json"
    elif damage == "altered":
        (directory / "scores.csv").write_text((directory / "scores.csv").read_text().replace("0.7", "0.9"))
        named = directory / "scores.csv"
    else:
        (directory / damage).unlink()
        named = directory / damage
    with pytest.raises(CorruptRecordError, match=re.escape(str(named)) if damage != "altered" else "scores"):
        load_scores(root)
    runner = CliRunner()
    out = tmp_path / "report"
    result = runner.invoke(
        app,
        ["report", "--results-root", str(root), "--out", str(out), "--format", "csv,html"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())
    assert "Unreadable record" in flat and "apgbench run -d dsb -m apg" in flat
    assert str(named.name) in flat
    page = (out / "report.html").read_text()
    assert "What is missing" in page and "apgbench run -d dsb -m apg" in page
    table = pd.read_csv(out / "msa_table.csv", index_col=[0, 1])
    assert list(table.columns) == ["ais"]  # the rest is still reported
    # the named command repairs it
    from apgbench.results import RecordWriter

    with pytest.warns(UserWarning), RecordWriter(directory):
        pass
    assert not (directory / ".commit.json").exists()


def test_status_shows_an_all_failed_record_as_failed(tmp_path):
    from apgbench.distributed import record_state

    root = tmp_path / "results"
    directory = write_record(root, "dsb", "apg", "nuclei-fluo", {}, errors={"a": "RuntimeError: x", "b": "y"})
    assert json.loads((directory / "run.json").read_text())["complete"]
    assert record_state(directory)["state"] == "failed"
    ok = write_record(root, "dsb", "ais", "nuclei-fluo", {"a": 0.5}, errors={"b": "y"})
    assert record_state(ok)["state"] == "done"
    (ok / ".commit.json").write_text("{")  # an unreadable journal: named, not a crash
    state = record_state(ok)
    assert state["state"] == "corrupt" and ".commit.json" in state["problems"][0]


def test_identical_scores_get_identical_intervals(tmp_path, config_dir):
    root = tmp_path / "results"
    values = {f"i{k}": v for k, v in enumerate(np.random.default_rng(0).uniform(0.3, 0.9, 12))}
    write_record(root, "dsb", "ais", "nuclei-fluo", values)
    write_record(root, "dsb", "apg", "nuclei-fluo", dict(reversed(values.items())))  # stored in another order
    write_record(root, "tissuenet", "cellpose-sam", "cells-fluo", values)
    intervals = msa_intervals(counted_scores(load_filtered_scores(root)), n_boot=300).set_index("method")
    rows = intervals[["ci_low", "ci_high"]].drop_duplicates()
    assert len(rows) == 1 and rows.iloc[0, 0] < rows.iloc[0, 1]


def test_ranks_over_uneven_coverage_say_so(tmp_path, config_dir):
    """A method run on one easy dataset must not top the overall rank over methods run on three."""
    root = tmp_path / "results"
    for dataset, domain in (("dsb", "nuclei-fluo"), ("u20s", "nuclei-fluo"), ("tissuenet", "cells-fluo")):
        write_record(root, dataset, "ais", domain, {"a": 0.6})
        write_record(root, dataset, "apg", domain, {"a": 0.5})
    write_record(root, "dsb", "cellpose-sam", "nuclei-fluo", {"a": 0.9})
    table = msa_table(load_filtered_scores(root))
    avg = average_ranks(table)
    assert avg.loc["ais", "overall"] == 1 and avg.loc["apg", "overall"] == 2
    assert np.isnan(avg.loc["cellpose-sam", "overall"])  # not ranked overall: it lacks two datasets
    assert avg.loc["cellpose-sam", "n_datasets"] == 1 and avg.attrs["overall_datasets"] == [
        "dsb",
        "tissuenet",
        "u20s",
    ]
    result = build_report(root, tmp_path / "out", formats=("csv", "html"), n_boot=20)
    ranks = pd.read_csv(tmp_path / "out" / "ranks.csv", index_col=0)
    assert ranks.loc["cellpose-sam", "n_datasets"] == 1 and np.isnan(
        ranks.loc["cellpose-sam", "rank overall"]
    )
    assert any("cellpose-sam" in note and "not ranked overall" in note.lower() for note in result.notes)
