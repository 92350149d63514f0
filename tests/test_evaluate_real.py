"""``evaluate`` on the real annotated samples in ../shared/data, through a prepared dataset."""

from __future__ import annotations

import pandas as pd
import tifffile
import yaml
from typer.testing import CliRunner

from apgbench.cli import app
from apgbench.datasets import Sample, write_prepared

from .conftest import iter_shared_samples

CONFIG = {
    "id": "shared-samples",
    "name": "Real samples shipped beside the project",
    "domain": "nuclei-fluo",
    "citation": "see ../shared/data/MANIFEST.md",
    "licence": "various",
    "source": {"kind": "manual", "instructions": "Copied by the test."},
    "format": {"reader": "prepared"},
    "split": {"description": "all images"},
}


def test_evaluate_on_real_samples(shared_data, roots, tmp_path, monkeypatch):
    results, data = roots
    config_dir = tmp_path / "configs"
    (config_dir / "datasets").mkdir(parents=True)
    (config_dir / "datasets" / "shared-samples.yaml").write_text(yaml.safe_dump(CONFIG))
    monkeypatch.setenv("APGBENCH_CONFIG_DIR", str(config_dir))
    samples = [
        Sample(f"{source}-{stem}", image, labels) for _, source, stem, image, labels in iter_shared_samples()
    ]
    assert len(samples) == 11
    write_prepared(data / "shared-samples" / "prepared.h5", "shared-samples", samples)

    predictions = tmp_path / "preds"
    predictions.mkdir()
    for sample in samples:  # ground truth with the ids shuffled: must still be a perfect score
        tifffile.imwrite(predictions / f"{sample.image_id}.tif", (sample.labels.astype("uint32") * 7) % 65521)
    result = CliRunner().invoke(
        app,
        ["evaluate", "-d", "shared-samples", "--predictions", str(predictions), "--name", "ground-truth"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    scores = pd.read_csv(results / "ground-truth" / "shared-samples" / "default" / "scores.csv")
    assert len(scores) == 11 and (scores["msa"] == 1.0).all() and scores["error"].isna().all()
    assert (scores["n_true"] == scores["n_pred"]).all()
