"""`evaluate`: which files count as predictions, and which names it may use (issue 12, items 2 and 3)."""

from __future__ import annotations

import json

import imageio.v3 as iio
import numpy as np
import pandas as pd
import pytest
import tifffile
from typer.testing import CliRunner

from apgbench.cli import app
from apgbench.datasets import load_dataset
from apgbench.evaluate import evaluate_predictions
from apgbench.label_files import candidates, read_label_file
from apgbench.results import PARTS, RecordRepairedWarning, RecordWriter, RunInfo, now, read_scores
from apgbench.runner import run_benchmark

DATASET = "synthetic-cells"


@pytest.fixture
def samples(roots):
    return list(load_dataset(DATASET))


def _scores(results, name):
    return read_scores(results / name / DATASET / "default").set_index("image_id")


def test_suffix_rules(tmp_path):
    for name in (
        "a.tif",
        "a_cp_masks.png",
        "b_seg.npy",
        "c_labels.tif",
        "d_label.png",
        "e_masks.npy",
        "f.png",
        "a_masks.txt",
        "x_cp_masks.png",
        "g_seg.tif",
        "h_masks.tif",
    ):
        (tmp_path / name).write_bytes(b"")
    found = candidates(tmp_path, ["a", "b", "c", "d", "e", "f", "g", "h", "h_masks"])
    assert [p.name for p in found["a"].files] == ["a_cp_masks.png"]  # a.tif is the input next to it
    assert [p.name for p in found["a"].plain] == ["a.tif"]
    assert [p.name for p in found["b"].files] == ["b_seg.npy"]
    assert [p.name for p in found["c"].files] == ["c_labels.tif"]
    assert [p.name for p in found["d"].files] == ["d_label.png"]
    assert [p.name for p in found["e"].files] == ["e_masks.npy"]
    assert [p.name for p in found["f"].files] == ["f.png"]
    assert found["g"].files == []  # _seg is Cellpose's .npy only
    assert found["h"].files == [] and [p.name for p in found["h_masks"].files] == [
        "h_masks.tif"
    ]  # exact id first


def test_cellpose_seg_npy_is_read(tmp_path):
    masks = np.zeros((8, 8), np.uint16)
    masks[2:5, 2:5] = 1
    np.save(tmp_path / "a_seg.npy", {"masks": masks, "outlines": masks * 0}, allow_pickle=True)
    np.testing.assert_array_equal(read_label_file(tmp_path / "a_seg.npy"), masks)
    np.save(tmp_path / "b_masks.npy", np.array([{"masks": masks}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=r"b_masks.npy holds Python objects"):
        read_label_file(tmp_path / "b_masks.npy")  # only the documented Cellpose name is unpickled


def test_input_image_next_to_masks_is_never_scored(roots, samples, tmp_path):
    results, _ = roots
    folder = tmp_path / "cellpose-out"
    folder.mkdir()
    for sample in samples:
        tifffile.imwrite(folder / f"{sample.image_id}.tif", sample.image)  # the input Cellpose read
        iio.imwrite(folder / f"{sample.image_id}_cp_masks.png", sample.labels.astype(np.uint16))
        np.save(
            folder / f"{sample.image_id}_seg.npy",
            {"masks": sample.labels.astype(np.uint16)},
            allow_pickle=True,
        )
    evaluate_predictions(DATASET, folder, "my-cellpose", results_root=results)
    scores = _scores(results, "my-cellpose")
    assert scores["error"].isna().all() and (scores["msa"] == 1.0).all()


def test_input_image_alone_is_refused(roots, samples, tmp_path):
    results, _ = roots
    folder = tmp_path / "inputs"
    folder.mkdir()
    for sample in samples:
        tifffile.imwrite(folder / f"{sample.image_id}.tif", sample.image.astype(np.uint16))
    with pytest.raises(ValueError, match=r"is the dataset's input image"):
        evaluate_predictions(DATASET, folder, "inputs", results_root=results)
    # half inputs, half predictions: the inputs are failures (0), never scored
    for sample in samples[:3]:
        tifffile.imwrite(folder / f"{sample.image_id}.tif", sample.labels.astype(np.uint32))
    evaluate_predictions(DATASET, folder, "inputs", results_root=results)
    scores = _scores(results, "inputs")
    assert scores["error"].notna().sum() == len(samples) - 3
    assert scores["error"].dropna().str.contains("input image").all()


def test_ambiguous_files_are_refused_with_their_names(roots, samples, tmp_path):
    results, _ = roots
    folder = tmp_path / "two"
    folder.mkdir()
    for sample in samples:
        tifffile.imwrite(folder / f"{sample.image_id}_masks.tif", sample.labels.astype(np.uint32))
    other = samples[1]
    tifffile.imwrite(folder / f"{other.image_id}_labels.tif", (other.labels > 0).astype(np.uint32))
    with pytest.raises(
        ValueError,
        match=rf"{other.image_id}_labels.tif.*{other.image_id}_masks.tif|"
        rf"{other.image_id}_masks.tif.*{other.image_id}_labels.tif",
    ):
        evaluate_predictions(DATASET, folder, "twice", results_root=results)
    assert not (results / "twice").exists()


def test_name_may_not_be_a_method_id_or_a_run_record(roots, samples, tmp_path):
    results, _ = roots
    folder = tmp_path / "gt"
    folder.mkdir()
    for sample in samples:
        tifffile.imwrite(folder / f"{sample.image_id}.tif", sample.labels.astype(np.uint32))
    runner = CliRunner()
    for name in ("classic", "apg"):
        for extra in ([], ["--force"]):
            result = runner.invoke(
                app, ["evaluate", "-d", DATASET, "--predictions", str(folder), "--name", name, *extra]
            )
            assert result.exit_code == 1 and "registered method" in result.output, result.output
    # a record made by `run` under a name that is no longer registered (an uninstalled plugin)
    run_benchmark(DATASET, "classic", results_root=results, limit=2, show_progress=False)
    kept = results / "classic" / DATASET / "default"
    plugin = results / "gone-plugin" / DATASET / "default"
    plugin.parent.mkdir(parents=True, exist_ok=True)
    import shutil

    shutil.copytree(kept, plugin)
    before = (plugin / "scores.csv").read_bytes()
    for extra in ([], ["--force"]):
        result = runner.invoke(
            app, ["evaluate", "-d", DATASET, "--predictions", str(folder), "--name", "gone-plugin", *extra]
        )
        assert result.exit_code == 1 and "apgbench run" in result.output, result.output
    assert (plugin / "scores.csv").read_bytes() == before


def test_parts_for_unknown_images_are_never_merged(roots, samples, tmp_path):
    results, _ = roots
    directory = run_benchmark(
        DATASET, "classic", results_root=results, limit=2, show_progress=False
    ).directory
    with RecordWriter(directory) as writer:  # a part for an image the dataset does not have
        stored = json.loads((directory / "run.json").read_text())
        writer.provenance = {k: stored[k] for k in ("dataset_fingerprint", "params")}
        writer.add(
            "not-an-image",
            None,
            {
                "dataset": DATASET,
                "method": "classic",
                "run_key": "default",
                "image_id": "not-an-image",
                "msa": 1.0,
                "n_true": 1,
                "n_pred": 1,
                "error": None,
            },
        )
    assert (directory / PARTS / "not-an-image.npz").exists()
    with pytest.warns(RecordRepairedWarning, match="not-an-image"):
        run_benchmark(DATASET, "classic", results_root=results, limit=3, show_progress=False)
    scores = read_scores(directory)
    assert "not-an-image" not in set(scores["image_id"]) and len(scores) == 3
    assert not (directory / PARTS / "not-an-image.npz").exists()

    # the same through evaluate's writer
    folder = tmp_path / "gt"
    folder.mkdir()
    for sample in samples:
        tifffile.imwrite(folder / f"{sample.image_id}.tif", sample.labels.astype(np.uint32))
    evaluate_predictions(DATASET, folder, "oracle", results_root=results)
    target = results / "oracle" / DATASET / "default"
    with RecordWriter(target) as writer:
        writer.add("intruder", None, {"dataset": DATASET, "image_id": "intruder", "msa": 1.0, "error": None})
        info = RunInfo(
            dataset=DATASET,
            domain="cells-fluo",
            method="oracle",
            run_key="default",
            params={},
            apgbench_version="t",
            started=now(),
            n_images=len(samples),
        )
        with pytest.warns(RecordRepairedWarning, match="intruder"):
            writer.finalize(info, image_ids=[s.image_id for s in samples])
    assert "intruder" not in set(pd.read_csv(target / "scores.csv")["image_id"])
