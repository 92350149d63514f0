"""The shipped paper table and the paper column: values equal to the CSV, mapping of ids and settings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from apgbench.methods import available_methods
from apgbench.report import build_report
from apgbench.report.paper import load_paper_msa, paper_dataset_id, paper_row, paper_value

from .conftest import REPO, write_crafted, write_record

REFERENCE = REPO.parent / "shared" / "reference" / "paper_msa.csv"


def test_shipped_csv_is_the_reference():
    paper = load_paper_msa()
    assert len(paper) == 396 and paper["dataset_id"].nunique() == 36
    assert list(paper.columns) == [
        "domain",
        "dataset_id",
        "dataset_name",
        "method_id",
        "setting",
        "paper_method_label",
        "msa",
    ]
    if not REFERENCE.exists():
        pytest.skip("../shared/reference/paper_msa.csv is absent; only the shipped copy was checked")
    pd.testing.assert_frame_equal(paper, pd.read_csv(REFERENCE))


def test_every_mapped_row_exists_once_per_dataset():
    paper = load_paper_msa()
    rows_of = {name: cls.meta.paper_row for name, cls in available_methods().items() if cls.meta.paper_row}
    assert set(rows_of) == {
        "amg",
        "ais",
        "apg",
        "apg-bd",
        "apg-ref",
        "cellpose-sam",
        "cellpose3",
        "cellsam",
        "sam3",
    }
    for method, (paper_method, setting) in rows_of.items():
        rows = paper[(paper["method_id"] == paper_method) & (paper["setting"] == setting)]
        assert rows["dataset_id"].nunique() == len(rows) == 36, method


def test_ids_and_settings():
    assert paper_dataset_id("bitdepth-nucseg") == "bitdepth_nucseg"  # config paper_id, or the '-' -> '_' rule
    assert paper_dataset_id("not-a-dataset") == "not_a_dataset"
    assert paper_value("dsb", "apg") == pytest.approx(
        0.665
    )  # "APG - without grid search (cc)", not grid search
    assert paper_value("dsb", "apg-bd") == pytest.approx(0.662)
    assert paper_value("dsb", "amg") == pytest.approx(0.331)  # SAM vit_b, not the µSAM-generalist AMG row
    assert paper_value("dsb", "apg-ref") == paper_value("dsb", "apg")
    assert np.isnan(paper_value("dsb", "classic")) and np.isnan(paper_value("dsb", "apg[p-123]"))
    assert np.isnan(paper_value("mouse-embryo", "apg-bd"))  # the paper has no value there
    assert np.isnan(paper_value("synthetic-nuclei", "apg"))


def test_paper_column_equals_csv(tmp_path, config_dir):
    root = tmp_path / "results"
    write_crafted(root)
    write_record(root, "dsb", "classic", "nuclei-fluo", {"img-0": 0.3, "img-1": 0.5})
    result = build_report(root, tmp_path / "report", formats=("csv",), n_boot=100)
    comparison = pd.read_csv(tmp_path / "report" / "paper_comparison.csv")
    paper = load_paper_msa()
    assert len(comparison) == 14  # the 14 crafted pairs all have a paper row; classic has none
    assert "classic" not in set(comparison["method"])
    for row in comparison.itertuples():
        method, setting = paper_row(row.method)
        expected = paper[
            (paper["dataset_id"] == row.dataset)
            & (paper["method_id"] == method)
            & (paper["setting"] == setting)
        ]["msa"].item()
        assert row.paper == pytest.approx(expected)
        assert row.ours == pytest.approx(result.table.loc[(row.domain, row.dataset), row.method], abs=1e-4)
        assert row.difference == pytest.approx(row.ours - row.paper, abs=2e-4)
    ais_dsb = comparison[(comparison["dataset"] == "dsb") & (comparison["method"] == "ais")].iloc[0]
    assert ais_dsb.paper == pytest.approx(0.654) and ais_dsb.difference == pytest.approx(
        0.6 - 0.654, abs=1e-4
    )
