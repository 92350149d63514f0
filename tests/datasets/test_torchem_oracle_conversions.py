"""Arvidsson (RGB-coded labels) and GoNuclear (flip, clip, dropped slices): torch-em's conversion as the oracle.

Archives in the real inner layout go through apgbench's download -> extract -> prepare path; the same files
go through torch-em's own conversion and micro-sam ``util.py`` (4f6d45e2): centre crop, slicing, the
``_process_images`` object minimum. Image and label arrays must be equal.
"""

from __future__ import annotations

import shutil
import zipfile

import h5py
import numpy as np
import pytest

from ._helpers import fetch_and_prepare, published, write, zip_tree
from .test_torchem_oracle_polygons import TORCH_EM, _centre_crop, _oracle

pytestmark = pytest.mark.network


def _keep(labels: np.ndarray, minimum: int) -> bool:
    """micro-sam util.py:53-62 ``_process_images``: drop empty labels and those with < minimum values."""
    n = len(np.unique(labels))
    return n != 1 and n >= minimum


def test_arvidsson_rgb_labels_equal_torch_em(tmp_path, server):
    arvidsson = pytest.importorskip("torch_em.data.datasets.light_microscopy.arvidsson", reason=TORCH_EM)
    import imageio.v3 as iio

    # Layout: torch-em arvidsson.py get_arvidsson_data/paths: test_nuclei.zip unpacks to test_nuclei/images/*.png
    # and test_nuclei/annotations/*.png (RGB, one colour per nucleus), natsorted and paired by position.
    rng = np.random.default_rng(4)
    src = tmp_path / "src" / "test_nuclei"
    for k in range(3):
        write(src / "images" / f"img_{k}.png", rng.integers(0, 255, (600, 700), dtype=np.uint8))
        rgb = np.zeros((600, 700, 3), np.uint8)
        for j in range(12):
            r, c = 60 + 40 * j, 80 + 45 * j
            rgb[r : r + 30, c : c + 30] = rng.integers(1, 255, 3)
        rgb[300:320, 100:130] = rgb[
            60, 80
        ]  # same colour as the first nucleus, elsewhere: split by components
        rgb[61:71, 110:140] = (7, 7, 7)  # touches the first nucleus: a separate object
        write(src / "annotations" / f"img_{k}.png", rgb)
    archive = zip_tree(tmp_path / "src", tmp_path / "test_nuclei.zip")
    ours = fetch_and_prepare(published("arvidsson", server, {"test_nuclei.zip": archive}), tmp_path / "data")

    oracle = tmp_path / "torch_em"
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(oracle)
    with _oracle():
        raw_paths, label_paths = arvidsson.get_arvidsson_paths(str(oracle), "test")
    expected = [
        (_centre_crop(iio.imread(r)), _centre_crop(iio.imread(lab))) for r, lab in zip(raw_paths, label_paths)
    ]
    expected = [(im, lab) for im, lab in expected if _keep(lab, 5)]
    assert len(ours) == len(expected) == 3
    for sample, (image, labels) in zip(ours, expected):
        np.testing.assert_array_equal(sample.image, image)
        np.testing.assert_array_equal(sample.labels, labels)


GONUCLEAR_SAMPLES = ["1135", "1136", "1137", "1139", "1170"]


def test_gonuclear_volumes_equal_torch_em(tmp_path, server):
    gonuclear = pytest.importorskip("torch_em.data.datasets.light_microscopy.gonuclear", reason=TORCH_EM)

    # Layout: torch-em gonuclear.py _process_data: the zip unpacks to 'Training image dataset_Tiff Files/<sample>/'
    # with <sample>_n_H2BtdTomato, _n_stain_StarDist_goldGT, _cellwall, _cellseg as .tif or .tiff.
    rng = np.random.default_rng(5)
    base = tmp_path / "src" / "Training image dataset_Tiff Files"
    grid = np.zeros((52, 54), np.uint16)
    for i in range(5):
        for j in range(5):
            grid[2 + 10 * i : 9 + 10 * i, 2 + 10 * j : 9 + 10 * j] = 1 + 5 * i + j
    for n, sample in enumerate(GONUCLEAR_SAMPLES):
        depth = 70 + n
        raw = rng.integers(0, 60000, (depth, 50, 52), dtype=np.uint16)
        labels = np.stack([np.roll(grid, z % 3, axis=1) for z in range(depth)])  # larger than raw: clipped
        labels[::7] = 0  # some empty slices
        suffix = ".tiff" if sample == "1136" else ".tif"
        write(base / sample / f"{sample}_n_H2BtdTomato{suffix}", raw)
        write(base / sample / f"{sample}_n_stain_StarDist_goldGT.tif", labels)
        write(base / sample / f"{sample}_cellwall.tif", raw)
        write(base / sample / f"{sample}_cellseg.tif", labels)
    archive = zip_tree(tmp_path / "src", tmp_path / "gonuclear.zip")
    ours = fetch_and_prepare(published("gonuclear", server, {"gonuclear.zip": archive}), tmp_path / "data")

    with zipfile.ZipFile(archive) as zf:
        zf.extractall(tmp_path / "torch_em")
    with _oracle():
        gonuclear._process_data(
            str(tmp_path / "torch_em" / "Training image dataset_Tiff Files"),
            str(tmp_path / "torch_em" / "gonuclear_datasets"),
        )
    images, labels = [], []
    for sample in sorted(GONUCLEAR_SAMPLES):  # get_gonuclear_paths: sorted(glob(*.h5)); util.py:465-485
        with h5py.File(tmp_path / "torch_em" / "gonuclear_datasets" / f"{sample}.h5", "r") as f:
            images.extend(f["raw/nuclei"][:])
            labels.extend(f["labels/nuclei"][:])
    expected = [(_centre_crop(im), _centre_crop(lab)) for im, lab in zip(images[250:], labels[250:])]
    expected = [(im, lab) for im, lab in expected if _keep(lab, 20)]
    assert len(images) == sum(70 + n for n in range(5)) - 2  # last slice of 1137 and 1170 dropped
    assert len(ours) == len(expected) > 0
    for sample, (image, lab) in zip(ours, expected):
        np.testing.assert_array_equal(sample.image, image)
        np.testing.assert_array_equal(sample.labels, lab)


def test_deepbacs_mixed_archive_equals_torch_em(tmp_path, server):
    deepbacs = pytest.importorskip("torch_em.data.datasets.light_microscopy.deepbacs", reason=TORCH_EM)
    import imageio.v3 as iio
    from natsort import natsorted

    # Layout: torch-em deepbacs.py get_deepbacs_data unzips the MIXED archive into <path>/mixed, and
    # get_deepbacs_paths reads mixed/test/{source,target}: the archive's top holds training/ and test/.
    rng = np.random.default_rng(6)
    src = tmp_path / "src"
    for k in range(3):
        labels = np.zeros((600, 640), np.uint16)
        for j in range(8):
            labels[40 + 60 * j : 70 + 60 * j, 30 + 70 * j : 50 + 70 * j] = j + 1
        for split in ("training", "test"):
            write(src / split / "source" / f"img_{k}.tif", rng.integers(0, 255, (600, 640), dtype=np.uint8))
            write(src / split / "target" / f"img_{k}.tif", labels)
    archive = zip_tree(src, tmp_path / "deepbacs_mixed.zip")
    ours = fetch_and_prepare(
        published("deepbacs", server, {"deepbacs_mixed.zip": archive}), tmp_path / "data"
    )

    with zipfile.ZipFile(archive) as zf:
        zf.extractall(tmp_path / "torch_em" / "mixed")
    with _oracle():
        image_dir, label_dir = deepbacs.get_deepbacs_paths(
            str(tmp_path / "torch_em"), bac_type="mixed", split="test"
        )
    # micro-sam util.py:191-201: natsorted *.tif of both folders, paired by position, centre crop, >= 5 values
    pairs = zip(
        natsorted((tmp_path / "torch_em" / "mixed" / "test" / "source").glob("*.tif")),
        natsorted((tmp_path / "torch_em" / "mixed" / "test" / "target").glob("*.tif")),
    )
    assert image_dir.endswith("mixed/test/source") and label_dir.endswith("mixed/test/target")
    expected = [(_centre_crop(iio.imread(i)), _centre_crop(iio.imread(lab))) for i, lab in pairs]
    expected = [(im, lab) for im, lab in expected if _keep(lab, 5)]
    assert len(ours) == len(expected) == 3
    for sample, (image, labels) in zip(ours, expected):
        np.testing.assert_array_equal(sample.image, image)
        np.testing.assert_array_equal(sample.labels, labels)


def test_dynamicnuclearnet_channels_equal_torch_em(tmp_path):
    dnn = pytest.importorskip("torch_em.data.datasets.light_microscopy.dynamicnuclearnet", reason=TORCH_EM)
    z5py = pytest.importorskip("z5py", reason="torch-em's DynamicNuclearNet conversion writes zarr with z5py")

    from apgbench.datasets import get_dataset_config, load_dataset
    from apgbench.datasets.manage import import_dataset

    # Layout: torch-em dynamicnuclearnet.py:29-35, 50-57: the zip holds DynamicNuclearNet-segmentation-v1_0/
    # {train,val,test}.npz with X (N, H, W, C), y (N, H, W, C) and a 'meta' table; channel 0 of each is used.
    rng = np.random.default_rng(7)
    grid = np.zeros((64, 64), np.int32)
    for k in range(9):
        grid[4 + 20 * (k // 3) : 14 + 20 * (k // 3), 4 + 20 * (k % 3) : 14 + 20 * (k % 3)] = k + 1
    y = np.stack([np.stack([np.roll(grid, i, 0), np.roll(grid, 2 * i, 1) * (i % 2)], -1) for i in range(4)])
    y[3, ..., 0] = np.where(y[3, ..., 0] > 3, 0, y[3, ..., 0])  # 4 values only: dropped by the minimum of 5
    x = rng.random((4, 64, 64, 2)).astype(np.float32)
    meta = np.array([["filename", "experiment"]] + [[f"f{i}", "e"] for i in range(4)], dtype=object)
    folder = tmp_path / "src" / "DynamicNuclearNet-segmentation-v1_0"
    folder.mkdir(parents=True)
    for split in ("train", "val", "test"):
        np.savez(folder / f"{split}.npz", X=x, y=y, meta=meta)
    archive = zip_tree(tmp_path / "src", tmp_path / "DynamicNuclearNet-segmentation-v1_0.zip")
    config = get_dataset_config("dynamicnuclearnet")
    import_dataset(config, archive, tmp_path / "data")  # manual dataset: no published checksum
    ours = list(load_dataset(config, tmp_path / "data"))

    shutil.copytree(tmp_path / "src", tmp_path / "torch_em")
    with _oracle():
        dnn._create_split(str(tmp_path / "torch_em"), "test")
    stored = []
    for i in range(4):  # micro-sam util.py:428-435: raw and labels of each stored image, >= 5 values
        with z5py.File(str(tmp_path / "torch_em" / "test" / f"image_{i:04}.zarr"), "r") as f:
            stored.append((f["raw"][:], f["labels"][:]))
    expected = [(image, labels) for image, labels in stored if _keep(labels, 5)]
    assert len(ours) == len(expected) == 3
    for sample, (image, labels) in zip(ours, expected):
        np.testing.assert_array_equal(sample.image, image)
        np.testing.assert_array_equal(sample.labels, labels)
