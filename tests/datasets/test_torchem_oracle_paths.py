"""Datasets whose torch-em loader mostly finds and pairs files: CytoDArk0, CellBinDB, BitDepth NucSeg, DeepSeas,
Cellpose. The real inner layout goes through apgbench and through torch-em's own path functions plus the
micro-sam ``util.py`` (4f6d45e2) steps; the prepared images and labels must be equal, in the paper's order.
"""

from __future__ import annotations

import shutil
import zipfile

import h5py
import numpy as np
import pytest

from apgbench.datasets import get_dataset_config, load_dataset
from apgbench.datasets.manage import import_dataset

from ._helpers import fetch_and_prepare, published, write, zip_tree
from .test_torchem_oracle_conversions import _keep
from .test_torchem_oracle_polygons import TORCH_EM, _centre_crop, _oracle

pytestmark = pytest.mark.network


def _grid(shape: tuple[int, int], n: int, seed: int) -> np.ndarray:
    """Labels with ``n`` squares (ids 1..n) on a grid, shifted by ``seed``."""
    labels = np.zeros(shape, np.uint16)
    for k in range(n):
        r, c = 3 + 9 * (k // 6) + seed % 3, 3 + 9 * (k % 6) + seed % 2
        labels[r : r + 6, c : c + 6] = k + 1
    return labels


def _assert_equal(ours, expected) -> None:
    assert len(ours) == len(expected) > 0
    for sample, (image, labels) in zip(ours, expected):
        np.testing.assert_array_equal(sample.image, image)
        np.testing.assert_array_equal(sample.labels, labels)


def test_cytodark0_fold_split_equals_torch_em(tmp_path, server):
    cytodark0 = pytest.importorskip("torch_em.data.datasets.histopathology.cytodark0", reason=TORCH_EM)
    import pandas as pd

    # Layout: torch-em cytodark0.py:36-92: cytoDArk0.zip unpacks to cytoDArk0/{20x/1024x1024,40x/2048x2048}/
    # image/<id>.png (RGB), label/<id>.tiff, graymask4/<id>.png and folds.csv (img_id, fold 0/1/2).
    rng = np.random.default_rng(8)
    for mag, size in (("20x", "1024x1024"), ("40x", "2048x2048")):
        base = tmp_path / "src" / "cytoDArk0" / mag / size
        ids = [f"{mag}_img{k}" for k in range(6)]
        for k, name in enumerate(ids):
            write(base / "image" / f"{name}.png", rng.integers(0, 255, (560, 600, 3), dtype=np.uint8))
            labels = np.kron(_grid((64, 64), 30, k), np.ones((9, 10), np.uint16))[:560, :600]
            write(base / "label" / f"{name}.tiff", labels)
            write(base / "graymask4" / f"{name}.png", (labels > 0).astype(np.uint8))
        pd.DataFrame({"img_id": ids, "fold": [0, 1, 2, 2, 0, 2]}).to_csv(base / "folds.csv", index=False)
    archive = zip_tree(tmp_path / "src", tmp_path / "cytoDArk0.zip")
    ours = fetch_and_prepare(published("cytodark0", server, {"cytoDArk0.zip": archive}), tmp_path / "data")

    oracle = tmp_path / "torch_em"
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(oracle)
    with _oracle():
        cytodark0._preprocess_images(str(oracle), str(oracle / "cytoDArk0"))
        paths = cytodark0.get_cytodark0_paths(str(oracle), split="test", magnification="20x")
    expected = {}
    for path in paths:  # micro-sam util.py:377-390
        with h5py.File(path, "r") as f:
            image, labels = (
                _centre_crop(f["raw"][:].transpose(1, 2, 0)),
                _centre_crop(f["labels/instances"][:]),
            )
        if _keep(labels, 5):
            expected[path.rsplit("/", 1)[1][:-3]] = (image, labels)
    ours = sorted(ours, key=lambda s: s.meta["source"])
    _assert_equal(ours, [expected[s.meta["source"].split("/")[-1][:-4]] for s in ours])
    assert len(ours) == 3


def test_cellbindb_modalities_equal_torch_em(tmp_path):
    cellbindb = pytest.importorskip("torch_em.data.datasets.light_microscopy.cellbindb", reason=TORCH_EM)
    import imageio.v3 as iio

    # Layout: torch-em cellbindb.py get_cellbindb_paths: Other/<modality>/<sample>/<sample>-img.tif and
    # -instancemask.tif, natsorted per modality, pairs with an unreadable TIFF dropped (dbadee8b, Dec 2025).
    rng = np.random.default_rng(9)
    for modality in ("10×Genomics_DAPI", "DAPI", "mIF", "HE"):
        for i in range(23):
            folder = tmp_path / "Other" / modality / f"s{i}"
            shape = (40, 56, 3) if modality == "mIF" else (40, 56)
            write(folder / f"s{i}-img.tif", rng.integers(0, 255, shape, dtype=np.uint8))
            write(folder / f"s{i}-instancemask.tif", _grid((40, 56), 12, i))
    (tmp_path / "Other" / "DAPI" / "s3" / "s3-img.tif").write_bytes(b"not a tiff")  # dropped before [20:]
    config = get_dataset_config("cellbindb")
    import_dataset(config, tmp_path, tmp_path / "data")
    ours = list(load_dataset(config, tmp_path / "data"))

    expected = []
    for choice in ("10×Genomics_DAPI", "DAPI", "mIF"):  # micro-sam util.py:746-755
        with _oracle():
            images, labels = cellbindb.get_cellbindb_paths(str(tmp_path), data_choice=choice)
        expected += [(iio.imread(i), iio.imread(lab)) for i, lab in zip(images[20:], labels[20:])]
    _assert_equal(ours, expected)
    assert len(ours) == 3 + 2 + 3


def test_bitdepth_magnifications_equal_torch_em(tmp_path, server):
    bitdepth = pytest.importorskip("torch_em.data.datasets.light_microscopy.bitdepth_nucseg", reason=TORCH_EM)
    import imageio.v3 as iio

    # Layout: torch-em bitdepth_nucseg.py: the repository's data/data.zip unpacks into data/ as
    # <magnification>/images_16bit/*.tif and <magnification>/label masks/*.tif ('40x air', ...).
    rng = np.random.default_rng(10)
    data = tmp_path / "data_zip"
    for mag in ("20x", "40x air", "40x oil", "63x oil"):
        for i in range(1, 7):
            write(
                data / mag / "images_16bit" / f"img_{i}.tif", rng.integers(0, 4000, (48, 60), dtype=np.uint16)
            )
            write(data / mag / "images_8bit" / f"img_{i}.tif", rng.integers(0, 255, (48, 60), dtype=np.uint8))
            write(data / mag / "label masks" / f"img_{i}.tif", _grid((48, 60), 10, i))
    repo = tmp_path / "repo" / "BitDepth_NucSeg-e235d31d09779cf2adf075254ce337157bbffc6a"
    (repo / "data").mkdir(parents=True)
    zip_tree(data, repo / "data" / "data.zip")
    (repo / "README.md").write_text("repository files besides data/")
    archive = zip_tree(tmp_path / "repo", tmp_path / "b.zip")
    ours = fetch_and_prepare(
        published("bitdepth-nucseg", server, {"BitDepth_NucSeg-e235d31d.zip": archive}), tmp_path / "cache"
    )

    oracle = tmp_path / "torch_em"
    shutil.copytree(data, oracle / "data")  # what get_bitdepth_nucseg_data leaves after unzipping data.zip
    expected = []
    for mag in ("20x", "40x_air", "40x_oil", "63x_oil"):  # micro-sam util.py:721-730
        with _oracle():
            images, labels = bitdepth.get_bitdepth_nucseg_paths(str(oracle), magnification=mag)
        expected += [(iio.imread(i), iio.imread(lab)) for i, lab in zip(images[4:], labels[4:])]
    _assert_equal(ours, expected)


def test_deepseas_and_cellpose_equal_torch_em(tmp_path):
    deepseas = pytest.importorskip("torch_em.data.datasets.light_microscopy.deepseas", reason=TORCH_EM)
    import imageio.v3 as iio
    from skimage.measure import label as connected_components
    from torch_em.data.datasets.light_microscopy import cellpose

    # Layout: torch-em deepseas.py: segmentation_dataset/test/{images,masks}/*.png (binary masks), natsorted.
    rng = np.random.default_rng(11)
    base = tmp_path / "deepseas" / "segmentation_dataset" / "test"
    for i in range(3):
        write(base / "images" / f"d{i}.png", rng.integers(0, 255, (70, 80), dtype=np.uint8))
        mask = (_grid((70, 80), 14 - 2 * i, i) > 0).astype(np.uint8) * 255
        mask[10:20, 3:30] = 255  # touching squares merge into one component, as in the paper
        write(base / "masks" / f"d{i}.png", mask)
    config = get_dataset_config("deepseas")
    import_dataset(config, tmp_path / "deepseas", tmp_path / "data")
    with _oracle():
        images, masks = deepseas.get_deepseas_paths(str(tmp_path / "deepseas"), split="test")
    expected = [
        (iio.imread(i), connected_components(iio.imread(m))) for i, m in zip(images, masks)
    ]  # util.py:286-297
    _assert_equal(list(load_dataset(config, tmp_path / "data")), [p for p in expected if _keep(p[1], 10)])

    # Layout: torch-em cellpose.py: test.zip unpacks (into cyto/) to test/<nnn>_img.png and <nnn>_masks.png.
    src = tmp_path / "cp" / "test"
    for i in range(3):
        write(src / f"{i:03d}_img.png", rng.integers(0, 255, (50, 60, 3), dtype=np.uint8))
        write(src / f"{i:03d}_masks.png", _grid((50, 60), 8, i))
    archive = zip_tree(tmp_path / "cp", tmp_path / "test.zip")
    config = get_dataset_config("cellpose")
    import_dataset(config, archive, tmp_path / "data")
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(tmp_path / "torch_em" / "cyto")
    with _oracle():
        images, masks = cellpose.get_cellpose_paths(str(tmp_path / "torch_em"), split="test", choice="cyto")
    _assert_equal(
        list(load_dataset(config, tmp_path / "data")),
        [(iio.imread(i), iio.imread(m)) for i, m in zip(images, masks)],
    )
