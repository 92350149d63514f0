"""The report's 3D section: volumetric records stay out of the 2D tables; 3D and slice-wise mSA side by side."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from apgbench.datasets import load_dataset
from apgbench.metrics import mean_segmentation_accuracy
from apgbench.report import build_report
from apgbench.report.volumes import slicewise_msa, split_volumetric, volume_mode_name
from apgbench.runner import run_benchmark


def test_slicewise_msa_scores_each_slice_with_objects_in_2d():
    truth = np.zeros((3, 8, 8), np.uint32)
    truth[0, :4, :4] = truth[1, :4, :4] = 1
    pred = truth.copy()
    pred[1][pred[1] == 1] = 7  # another id in slice 1: no matter slice-wise, a split object in 3D
    assert slicewise_msa(truth, pred) == [1.0, 1.0]  # the empty slice 2 is not scored (paper)
    assert mean_segmentation_accuracy(truth, pred) < 1.0


def test_modes_named():
    assert volume_mode_name("classic", {}) == "3D"
    assert volume_mode_name("ais", {}) == "stitch (library)"
    assert volume_mode_name("amg", {"stitch": "overlap"}) == "2D+stitch"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    run_benchmark("synthetic-nuclei", "classic", results_root=root, limit=2, show_progress=False)
    run_benchmark("synthetic-nuclei-3d", "classic", results_root=root, limit=2, show_progress=False)
    run_benchmark(
        "synthetic-nuclei-3d",
        "classic",
        params={"stitch": "overlap"},
        results_root=root,
        limit=2,
        show_progress=False,
    )
    return root


def test_report_on_3d_records_only_says_no_missing_results(store, tmp_path):
    only3d = build_report(store, tmp_path, datasets=("synthetic-nuclei-3d",), formats=("csv",), n_boot=10)
    assert not any("No results found" in n for n in only3d.notes)
    assert (tmp_path / "volumes_msa.csv").exists()


def test_report_has_a_3d_table_and_keeps_3d_out_of_fig2(store, tmp_path):
    result = build_report(store, tmp_path, formats=("csv", "html"), n_boot=50)
    assert "synthetic-nuclei-3d" not in set(result.table.index.get_level_values(1))
    assert "synthetic-nuclei" in set(result.table.index.get_level_values(1))
    table = pd.read_csv(tmp_path / "volumes_msa.csv")
    assert set(table["mode"]) == {"3D", "2D+stitch"}
    scores = pd.concat([pd.read_csv(p) for p in store.glob("classic/*/*/scores.csv")])
    assert len(split_volumetric(scores)[1]) == 4 and len(split_volumetric(scores)[0]) == 2
    # the slice-wise column recomputed by hand from the stored prediction of the default record
    data = load_dataset("synthetic-nuclei-3d")
    from apgbench.results import read_prediction

    folder = next(store.glob("classic/synthetic-nuclei-3d/default"))
    ids = [str(i) for i in pd.read_csv(folder / "scores.csv")["image_id"]]
    by_hand = [s for i in ids for s in slicewise_msa(data.get(i).labels, read_prediction(folder, i))]
    by_hand += [0.0] * sum(int(p.any()) for i in data.image_ids if i not in ids for p in data.get(i).labels)
    row = table[table["method"] == "classic"].iloc[0]
    assert row["mSA 2D (slices)"] == pytest.approx(np.mean(by_hand), rel=1e-5)
    # limit=2 of 4 volumes: the two never run count 0 in the 3D mean, as in 2D
    assert row["slices"] == len(by_hand) and (row["volumes"], row["failed"]) == (4, 2)
    assert row["mSA 3D"] == pytest.approx(pd.read_csv(folder / "scores.csv")["msa"].sum() / 4, rel=1e-5)
    stored = pd.read_csv(folder / "scores.csv")
    assert row["peak MiB"] == pytest.approx(stored["peak_mem_mb"].max(), rel=1e-3)
    assert row["s/volume"] == pytest.approx(stored["seconds"].mean(), rel=1e-3)
    page = result.html.read_text()
    assert "3D vs. slice-wise" in page and "2D+stitch" in page
