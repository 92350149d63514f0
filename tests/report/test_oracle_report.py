"""Fig. 2 and Fig. 3 numbers end to end from the oracle upper bounds of APG, APG-bd and AIS on built-in data.

The decoder maps come from the ground truth and the promptable model answers with the true object
(:mod:`apgbench.apg.testing`); the label images are scored and stored under the methods' ids as a run would,
and the report's numbers are checked against the per-image scores.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from apgbench.apg import automatic_instance_segmentation, automatic_prompt_generation
from apgbench.apg.testing import OracleModel, decoder_maps_from_labels
from apgbench.datasets import get_dataset_config, load_dataset
from apgbench.metrics import score_image
from apgbench.report import build_report
from apgbench.results import RecordWriter, RunInfo, load_scores, now, record_dir
from apgbench.runner import run_benchmark

DATASETS = ("synthetic-nuclei", "synthetic-cells")


def oracle_labels(labels: np.ndarray, method: str) -> np.ndarray:
    maps = decoder_maps_from_labels(labels)
    if method == "ais":
        return automatic_instance_segmentation(*maps)
    mode = "components" if method == "apg" else "boundary-maxima"
    return automatic_prompt_generation(*maps, OracleModel(labels), prompts=mode)


def store_as_run(root, dataset: str, method: str, samples) -> None:
    """Store the oracle's label images under a built-in method id, as `apgbench run` would (`evaluate` refuses
    built-in ids)."""
    directory = record_dir(root, method, dataset, "default")
    with RecordWriter(directory) as writer:
        for sample in samples:
            labels = oracle_labels(sample.labels, method)
            row = {
                "dataset": dataset,
                "method": method,
                "run_key": "default",
                "image_id": sample.image_id,
                **score_image(sample.labels, labels),
                "seconds": 0.0,
                "peak_mem_mb": 0.0,
                "error": None,
            }
            writer.add(sample.image_id, labels, row)
        info = RunInfo(
            dataset=dataset,
            domain=get_dataset_config(dataset).domain,
            method=method,
            run_key="default",
            params={"oracle": True},
            apgbench_version="test",
            started=now(),
            n_images=len(samples),
            complete=True,
            dataset_fingerprint=load_dataset(dataset).fingerprint(),
        )
        writer.finalize(info, image_ids=[s.image_id for s in samples])


@pytest.fixture(scope="module")
def oracle_report(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    for dataset in DATASETS:
        run_benchmark(dataset, "classic", results_root=root, show_progress=False)
        samples = list(load_dataset(dataset))
        for method in ("ais", "apg", "apg-bd"):
            store_as_run(root, dataset, method, samples)
    out = tmp_path_factory.mktemp("report")
    return load_scores(root), build_report(root, out, formats=("csv", "png"), n_boot=200)


def test_fig2_numbers_and_upper_bounds(oracle_report):
    scores, result = oracle_report
    table = pd.read_csv(result.out / "msa_table.csv", index_col=[0, 1])
    expected = scores.groupby(["dataset", "label"])["msa"].mean()
    for (_, dataset), row in table.iterrows():
        for method in ("classic", "ais", "apg-bd", "apg"):
            assert row[method] == pytest.approx(expected[(dataset, method)], abs=1e-4)
        assert row["APG − AIS"] == pytest.approx(row["apg"] - row["ais"], abs=2e-4)
    assert (table["apg"] > 0.9).all()  # with perfect maps and a perfect model APG is nearly exact
    assert list(table.columns) == ["ais", "apg-bd", "apg", "classic", "APG − AIS"]


def test_fig3_relative_difference(oracle_report):
    scores, result = oracle_report
    fig3 = pd.read_csv(result.out / "fig3_relative.csv", index_col=[0, 1])
    means = scores.groupby(["dataset", "label"])["msa"].mean()
    for (_, dataset), row in fig3.iterrows():
        for variant in ("apg", "apg-bd"):
            exact = 100 * (means[(dataset, variant)] - means[(dataset, "ais")]) / means[(dataset, "ais")]
            assert row[variant] == pytest.approx(exact, abs=0.05)
    assert (result.out / "fig3_relative.png").exists()
    ranks = pd.read_csv(result.out / "ranks.csv", index_col=0)
    assert set(ranks.index) == {"ais", "apg", "apg-bd", "classic"}
    assert ranks["rank overall"].min() >= 1 and ranks["rank overall"].max() <= 4


def test_paired_default_is_apg_vs_ais(oracle_report):
    scores, result = oracle_report
    paired = pd.read_csv(result.out / "paired_apg_vs_ais.csv").set_index("dataset")
    wide = scores.pivot_table(index=["dataset", "image_id"], columns="label", values="msa")
    assert paired.loc["all", "n_images"] == len(wide) == 12
    assert paired.loc["all", "mean_difference"] == pytest.approx((wide["apg"] - wide["ais"]).mean(), abs=1e-6)
