"""Volumes end to end: built-in 3D data -> method in 3D -> per-volume scores and 3D predictions in a record."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from apgbench.cli import app
from apgbench.datasets import Sample, get_dataset_config, load_dataset, resolve_dataset_ids, write_prepared
from apgbench.datasets.prepared import PreparedDataset
from apgbench.metrics import score_image
from apgbench.results import read_scores
from apgbench.runner import run_benchmark
from apgbench.smoke import smoke_test

DATASET = "synthetic-nuclei-3d"


def test_synthetic_3d_is_seeded_and_volumetric():
    config = get_dataset_config(DATASET)
    assert config.volumetric and config.builtin and config.voxel_size == (2.0, 1.0, 1.0)
    first, second = list(load_dataset(DATASET)), list(load_dataset(DATASET))
    assert len(first) == 4
    for a, b in zip(first, second):
        assert a.image.shape == a.labels.shape == (24, 128, 128) and a.image.dtype == np.uint16
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_array_equal(a.image, b.image)
        lab = a.labels
        assert len(np.unique(lab)) > 20
        touching = (lab[:, :, 1:] != lab[:, :, :-1]) & (lab[:, :, 1:] > 0) & (lab[:, :, :-1] > 0)
        assert touching.any()
        # anisotropic: objects span fewer slices than pixels in x (z voxels are twice as large)
        ids = np.unique(lab)[1:]
        z_extent = np.median([np.ptp(np.nonzero(lab == i)[0]) + 1 for i in ids[:10]])
        x_extent = np.median([np.ptp(np.nonzero(lab == i)[2]) + 1 for i in ids[:10]])
        assert z_extent < 0.75 * x_extent


def test_classic_run_writes_a_3d_record(roots):
    results, _ = roots
    summary = run_benchmark(DATASET, "classic", results_root=results, limit=2, show_progress=False)
    assert summary.n_new == 2 and summary.n_failed == 0
    scores = read_scores(summary.directory)
    data = load_dataset(DATASET)
    assert list(scores["image_id"]) == data.image_ids[:2]  # one row per volume
    with h5py.File(summary.directory / "predictions.h5") as f:
        for _, row in scores.iterrows():
            pred = f["labels"][row["image_id"]][()]
            true = data.get(row["image_id"]).labels
            assert pred.shape == true.shape == (24, 128, 128)
            expected = score_image(true, pred)  # the row is the 3D score of the stored volume
            assert row["msa"] == pytest.approx(expected["msa"]) and row["n_true"] == expected["n_true"]
            assert row["msa"] > 0.35
    info = json.loads((summary.directory / "run.json").read_text())
    assert info["complete"] is False and info["n_scored"] == 2


def test_2d_only_method_fails_before_any_work(roots):
    results, _ = roots
    with pytest.raises(ValueError, match=r"segments 2D images only.*stitch"):
        run_benchmark(DATASET, "amg", results_root=results, show_progress=False)
    assert not (results / "amg").exists()


def test_stitch_run_is_its_own_record(roots):
    results, _ = roots
    summary = run_benchmark(
        DATASET, "classic", params={"stitch": "overlap"}, results_root=results, limit=1, show_progress=False
    )
    assert summary.directory.name.startswith("p-") and summary.n_failed == 0
    info = json.loads((summary.directory / "run.json").read_text())
    assert info["params"]["stitch"] == "overlap"


def test_cli_run_end_to_end(roots):
    results, _ = roots
    out = CliRunner().invoke(app, ["run", "--dataset", DATASET, "--method", "classic", "--limit", "1"])
    assert out.exit_code == 0, out.output
    assert (results / "classic" / DATASET / "default" / "scores.csv").exists()
    out = CliRunner().invoke(app, ["run", "--dataset", DATASET, "--method", "amg"])
    assert out.exit_code != 0 and "segments 2D images only" in out.output


def test_selections_keep_2d_and_3d_apart():
    assert DATASET not in resolve_dataset_ids(["builtin"])
    assert DATASET in resolve_dataset_ids([DATASET])
    assert not any(get_dataset_config(i).volumetric for i in resolve_dataset_ids(["all"]))
    three_d = resolve_dataset_ids(["3d"])
    assert three_d and all(get_dataset_config(i).volumetric and i.endswith("-3d") for i in three_d)


def test_smoke_uses_2d_images_only():
    assert DATASET not in {r.dataset for r in smoke_test("classic")}


def test_prepared_store_holds_volumes(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, (6, 20, 30)).astype(np.uint32)
    image = rng.random((6, 20, 30)).astype(np.float32)
    path = tmp_path / "prepared.h5"
    write_prepared(path, "x-3d", [Sample("vol", image, labels, {"z": [0, 6]})])
    sample = PreparedDataset(path).get("vol")
    np.testing.assert_array_equal(sample.labels, labels)
    assert sample.image.shape == (6, 20, 30) and sample.meta == {"z": [0, 6]}
    with pytest.raises(ValueError, match="shape"):
        write_prepared(path, "x-3d", [Sample("vol", image[:, :10], labels)])


def test_evaluate_scores_label_volumes_from_another_tool(roots, tmp_path):
    import tifffile

    from apgbench.evaluate import evaluate_predictions

    results, _ = roots
    data = load_dataset(DATASET)
    folder = tmp_path / "preds"
    folder.mkdir()
    first, second = data.get(data.image_ids[0]), data.get(data.image_ids[1])
    tifffile.imwrite(folder / f"{first.image_id}.tif", first.labels)  # perfect volume
    tifffile.imwrite(folder / f"{second.image_id}.tif", second.labels[0])  # a 2D slice: wrong shape
    summary = evaluate_predictions(DATASET, folder, "external-3d", results_root=results)
    scores = read_scores(summary.directory).set_index("image_id")
    assert scores.loc[first.image_id, "msa"] == 1.0 and pd_isna(scores.loc[first.image_id, "error"])
    assert "not a 3D label image" in scores.loc[second.image_id, "error"]


def pd_isna(value) -> bool:
    import pandas as pd

    return bool(pd.isna(value))


def test_peak_memory_is_per_volume():
    """The runner resets the peak before each volume: a later, smaller volume does not inherit a larger peak.

    Measured in a fresh interpreter: in a process with many threads (torch's pool, after heavy tests) the
    kernel's RSS counters are synced lazily, so the figures of this process can lag behind.
    """
    import subprocess
    import sys

    code = """
import numpy as np
from apgbench.runner import peak_memory_mb, reset_peak_memory
if not reset_peak_memory():
    print("unsupported"); raise SystemExit
big = np.ones(300 * 2**20, np.uint8)  # 300 MiB, touched
high = peak_memory_mb()
del big
assert reset_peak_memory()
print(high, peak_memory_mb())
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    if out == ["unsupported"]:
        pytest.skip("this system cannot reset the peak resident memory (/proc/self/clear_refs)")
    high, after = map(float, out)
    assert after < high - 200


def test_volume_progress_reports_each_slice(tmp_path, monkeypatch):
    """A slice-wise method run on volumes reports every z slice to the runner's progress."""
    from apgbench import runner

    seen = []
    original = runner._progress

    class Spy:
        def __init__(self, show):
            self.inner = original(False)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

        def add_task(self, *args, **kwargs):
            return len(seen)

        def advance(self, *args):
            return None

        def update(self, task, **kwargs):
            seen.append(kwargs)

    monkeypatch.setattr(runner, "_progress", Spy)
    run_benchmark(
        DATASET, "classic", params={"stitch": "overlap"}, results_root=tmp_path, limit=1, show_progress=True
    )
    depth = next(iter(load_dataset(DATASET))).image.shape[0]
    done = [k["completed"] for k in seen if k.get("total") == depth]
    assert done == list(range(1, depth + 1))
