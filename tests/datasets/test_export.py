"""``apgbench datasets export``: the prepared split as TIFFs, scored back by ``evaluate`` (export -> predict ->
evaluate loop)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from apgbench.cli import app
from apgbench.datasets import DatasetNotPreparedError, load_dataset
from apgbench.datasets.export import export_dataset
from apgbench.evaluate import evaluate_predictions

runner = CliRunner()


@pytest.mark.parametrize("dataset", ["synthetic-nuclei", "synthetic-histo"])
def test_export_writes_the_split_exactly(roots, tmp_path, dataset):
    summary = export_dataset(dataset, tmp_path / "out")
    samples = list(load_dataset(dataset))
    assert summary.n_images == len(samples) > 0
    assert sorted(p.name for p in (tmp_path / "out" / "images").iterdir()) == sorted(
        f"{s.image_id}.tif" for s in samples
    )
    for sample in samples:
        image = tifffile.imread(tmp_path / "out" / "images" / f"{sample.image_id}.tif")
        labels = tifffile.imread(tmp_path / "out" / "labels" / f"{sample.image_id}.tif")
        assert image.dtype == sample.image.dtype and np.array_equal(image, sample.image)
        assert labels.dtype == sample.labels.dtype and np.array_equal(labels, sample.labels)
    assert samples[0].image.ndim == (3 if dataset == "synthetic-histo" else 2)


@pytest.mark.parametrize("dataset", ["synthetic-nuclei", "synthetic-histo"])
def test_exported_labels_score_one_with_evaluate(roots, tmp_path, dataset):
    out = tmp_path / "out"
    result = runner.invoke(app, ["datasets", "export", dataset, str(out)])
    assert result.exit_code == 0, result.output
    assert "apgbench evaluate --dataset" in " ".join(result.output.split())
    summary = evaluate_predictions(dataset, out / "labels", "exported")
    assert summary.mean_msa == 1.0 and summary.n_failed == 0
    assert summary.n_images == len(load_dataset(dataset))
    cli = runner.invoke(
        app,
        ["evaluate", "--dataset", dataset, "--predictions", str(out / "labels"), "--name", "exported-cli"],
    )
    assert cli.exit_code == 0 and "mSA 1.000" in cli.output


def test_export_refuses_to_overwrite_without_force(roots, tmp_path):
    out = tmp_path / "out"
    export_dataset("synthetic-cells", out)
    victim = min((out / "labels").iterdir())
    victim.write_bytes(b"my own file")
    result = runner.invoke(app, ["datasets", "export", "synthetic-cells", str(out)])
    text = " ".join(result.output.split())
    assert result.exit_code == 1 and "already exist: pass --force" in text and "Traceback" not in text
    assert victim.read_bytes() == b"my own file"  # nothing was touched
    assert runner.invoke(app, ["datasets", "export", "synthetic-cells", str(out), "--force"]).exit_code == 0
    assert tifffile.imread(victim).ndim == 2 and not list(out.rglob("*.partial"))


def test_export_of_an_unprepared_dataset_says_how_to_prepare_it(roots, tmp_path):
    with pytest.raises(DatasetNotPreparedError, match="apgbench datasets download livecell"):
        export_dataset("livecell", tmp_path / "out")
    result = runner.invoke(app, ["datasets", "export", "livecel", str(tmp_path / "out")])
    assert result.exit_code == 1 and "Did you mean 'livecell'" in result.output
    assert not (tmp_path / "out").exists()
