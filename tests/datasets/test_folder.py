"""A folder of one's own images and labels is a dataset: both layouts end to end on the real samples."""

from __future__ import annotations

import shutil

import imageio.v3 as iio
import numpy as np
import pandas as pd
import pytest
import tifffile
from typer.testing import CliRunner

from apgbench.cli import app
from apgbench.datasets import folder as folder_module
from apgbench.datasets import get_dataset_config, load_dataset, resolve_dataset_ids
from apgbench.datasets.readers import ReaderError

runner = CliRunner()


@pytest.fixture(autouse=True)
def _fresh_registry():
    folder_module._REGISTERED.clear()  # every test starts as a new process would
    yield
    folder_module._REGISTERED.clear()


def _flat(shared_data, tmp_path, source="nuclei-fluo/dsb2018", name="my_data"):
    """The real samples in the flat layout (X.tif + X_label.tif), as shipped in ../shared/data."""
    target = tmp_path / name
    shutil.copytree(shared_data / source, target)
    return target


def _split(shared_data, tmp_path, source="nuclei-fluo/dsb2018", name="split_data"):
    """The same samples as images/X.npy + labels/X.png (other formats, same pixels)."""
    target = tmp_path / name
    (target / "images").mkdir(parents=True)
    (target / "labels").mkdir()
    for label_path in sorted((shared_data / source).glob("*_label.tif")):
        stem = label_path.name[: -len("_label.tif")]
        image = tifffile.imread(shared_data / source / f"{stem}.tif")
        np.save(target / "images" / f"{stem}.npy", image)
        tail = "_masks" if "tests" in stem else ""  # labels/X_masks.png pairs with images/X.npy too
        iio.imwrite(target / "labels" / f"{stem}{tail}.png", tifffile.imread(label_path).astype(np.uint16))
    return target


def _scores(results, dataset, method="classic"):
    return pd.read_csv(results / method / dataset / "default" / "scores.csv").sort_values("image_id")


def test_both_layouts_run_end_to_end_on_real_images(shared_data, roots, tmp_path):
    results, data = roots
    flat, split = _flat(shared_data, tmp_path), _split(shared_data, tmp_path)
    for folder, dataset_id in ((flat, "my-data"), (split, "split-data")):
        result = runner.invoke(
            app, ["run", "--dataset", str(folder), "--method", "classic", "--domain", "nuclei-fluo"]
        )
        assert result.exit_code == 0, result.output
        assert f"classic on {dataset_id}: mSA" in " ".join(result.output.split())
    flat_scores, split_scores = _scores(results, "my-data"), _scores(results, "split-data")
    assert list(flat_scores.image_id) == ["stardist_data_img2d", "stardist_tests_img2d"]
    # the same pixels in other formats are the same dataset content: identical per-image scores
    assert np.allclose(flat_scores.msa, split_scores.msa) and (flat_scores.msa > 0).all()
    samples = {s.image_id: s for s in load_dataset("my-data")}
    for stem, sample in samples.items():
        assert np.array_equal(sample.image, tifffile.imread(flat / f"{stem}.tif"))
        assert np.array_equal(sample.labels, tifffile.imread(flat / f"{stem}_label.tif"))
    assert len(list((data / "folders" / "my-data").glob("*/prepared.h5"))) == 1
    report = runner.invoke(app, ["report", "--out", str(tmp_path / "report"), "--format", "md"])
    assert report.exit_code == 0, report.output
    table = (tmp_path / "report" / "msa_table.md").read_text()
    assert "my-data" in table and "split-data" in table


def test_rgb_histology_pairs_with_png_and_cellpose_masks(shared_data, roots, tmp_path):
    folder = tmp_path / "he_patches"
    folder.mkdir()
    tails = ["_cp_masks.png", "_masks.tif", "_label.tif"]
    for tail, label_path in zip(
        tails, sorted((shared_data / "nuclei-histo" / "consep_patches").glob("*_label.tif"))
    ):
        stem = label_path.name[: -len("_label.tif")]
        shutil.copyfile(label_path.with_name(f"{stem}.png"), folder / f"{stem}.png")
        labels = tifffile.imread(label_path)
        if tail.endswith(".png"):
            iio.imwrite(folder / f"{stem}{tail}", labels.astype(np.uint16))
        else:
            tifffile.imwrite(folder / f"{stem}{tail}", labels)
    (folder / "notes.txt").write_text("ignored")
    result = runner.invoke(app, ["run", "-d", str(folder), "-m", "classic", "--domain", "nuclei-histo"])
    assert result.exit_code == 0, result.output
    samples = list(load_dataset("he-patches"))
    assert [s.image.shape for s in samples] == [(256, 256, 3)] * 3
    assert get_dataset_config("he-patches").domain == "nuclei-histo"


def test_settings_file_and_new_version_on_edit(shared_data, roots, tmp_path):
    _, data = roots
    folder = _flat(shared_data, tmp_path, name="Lab Images")
    (folder / "apgbench.yaml").write_text("name: My lab\ndomain: nuclei-fluo\ncrop: 128\nprompt: nucleus\n")
    [dataset_id] = resolve_dataset_ids([str(folder)])  # the domain comes from the settings file
    config = get_dataset_config(dataset_id)
    assert dataset_id == "lab-images" and config.name == "My lab" and config.prompt == "nucleus"
    assert all(s.image.shape == (128, 128) for s in load_dataset(config))
    assert runner.invoke(app, ["run", "-d", str(folder), "-m", "classic"]).exit_code == 0
    # editing a label image makes a new dataset version: a new cache entry, and the store refuses to mix
    labels = tifffile.imread(folder / "stardist_tests_img2d_label.tif")
    labels[96:160, 96:160] = 0  # inside the 128 x 128 centre crop
    tifffile.imwrite(folder / "stardist_tests_img2d_label.tif", labels)
    folder_module._REGISTERED.clear()
    edited = runner.invoke(app, ["run", "-d", str(folder), "-m", "classic"])
    assert edited.exit_code == 1 and "--force" in edited.output
    assert len(list((data / "folders" / "lab-images").glob("*/prepared.h5"))) == 2
    assert runner.invoke(app, ["run", "-d", str(folder), "-m", "classic", "--force"]).exit_code == 0
    # another process (report, evaluate, submit workers) finds the newest version without the path
    folder_module._REGISTERED.clear()
    newest = get_dataset_config("lab-images")
    assert newest.content_hash != config.content_hash and newest.folder == str(folder.resolve())


def _message(folder, *extra):
    result = runner.invoke(app, ["run", "-d", str(folder), "-m", "classic", *extra])
    text = " ".join(result.output.split())
    assert result.exit_code == 1 and "Traceback" not in text, result.output
    return text


def test_bad_folders_get_one_sentence(shared_data, roots, tmp_path):
    folder = _flat(shared_data, tmp_path, name="bad")
    shutil.copyfile(folder / "stardist_tests_img2d.tif", folder / "extra.tif")
    shutil.copyfile(folder / "stardist_tests_img2d_label.tif", folder / "orphan_mask.tif")
    text = _message(folder, "--domain", "nuclei-fluo")
    assert "Unmatched files in" in text and "1 image(s) without a label file (extra.tif)" in text
    assert "1 label file(s) without an image (orphan_mask.tif)" in text
    (folder / "extra.tif").unlink()
    (folder / "orphan_mask.tif").unlink()
    assert "needs a domain" in _message(folder) and "--domain" in _message(folder)
    tifffile.imwrite(folder / "stardist_tests_img2d_label.tif", np.zeros((100, 100), np.uint16))
    text = _message(folder, "--domain", "nuclei-fluo")
    assert (
        "stardist_tests_img2d.tif is 256x256 but its labels stardist_tests_img2d_label.tif are 100x100"
        in text
    )
    (folder / "stardist_tests_img2d_label.tif").write_bytes(b"not an image")
    folder_module._REGISTERED.clear()
    assert "Cannot read stardist_tests_img2d_label.tif" in _message(folder, "--domain", "nuclei-fluo")


@pytest.mark.parametrize("case", ["jpeg-labels", "same-stem", "benchmark-id", "bool-labels", "bad-settings"])
def test_more_bad_folders(shared_data, roots, tmp_path, case):
    folder = _flat(shared_data, tmp_path, name="dsb" if case == "benchmark-id" else "mine")
    label = folder / "stardist_tests_img2d_label.tif"
    if case == "jpeg-labels":
        iio.imwrite(folder / "stardist_tests_img2d_label.jpg", (tifffile.imread(label) > 0).astype(np.uint8))
        label.unlink()
        expected = "Label images must be lossless"
    elif case == "same-stem":
        shutil.copyfile(folder / "stardist_tests_img2d.tif", folder / "stardist_tests_img2d.npy")
        expected = "claim the name 'stardist_tests_img2d'"
    elif case == "benchmark-id":
        expected = "would get the id 'dsb' of a benchmark dataset"
    elif case == "bool-labels":
        np.save(folder / "stardist_tests_img2d_label.npy", tifffile.imread(label) > 0)
        label.unlink()
        expected = "holds bool values, not instance labels"
    else:
        (folder / "apgbench.yaml").write_text("domian: nuclei-fluo\n")
        expected = "apgbench.yaml is not a valid folder-dataset settings file"
    assert expected in _message(folder, "--domain", "nuclei-fluo")


def test_paths_and_ids_resolve_as_before(roots, tmp_path):
    assert resolve_dataset_ids(["dsb", "synthetic-nuclei"]) == ["dsb", "synthetic-nuclei"]
    with pytest.raises(ReaderError, match="does not exist"):
        resolve_dataset_ids([str(tmp_path / "missing")], domain="nuclei-fluo")
    with pytest.raises(KeyError, match="Unknown dataset"):
        get_dataset_config("no-such-folder")


def test_domain_is_part_of_the_version(shared_data, roots, tmp_path):
    _, data = roots
    folder = _flat(shared_data, tmp_path)
    nuclei = get_dataset_config(resolve_dataset_ids([str(folder)], domain="nuclei-fluo")[0])
    load_dataset(nuclei)
    folder_module._REGISTERED.clear()
    cells = get_dataset_config(resolve_dataset_ids([str(folder)], domain="cells-fluo")[0])
    load_dataset(cells)
    assert nuclei.content_hash != cells.content_hash
    folder_module._REGISTERED.clear()
    assert get_dataset_config("my-data").domain == "cells-fluo"  # the newest version, with its own domain
    assert len(list((data / "folders" / "my-data").glob("*/config.json"))) == 2
