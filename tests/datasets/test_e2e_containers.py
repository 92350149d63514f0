"""Container formats (HDF5, zarr, NPZ, NPY) and 3D volumes end to end through the local server."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import tifffile

from apgbench.datasets import get_dataset_config, load_dataset
from apgbench.datasets.manage import import_dataset
from apgbench.datasets.schema import DatasetConfig

from ._helpers import disks, fetch_and_prepare, published, zip_tree

pytestmark = pytest.mark.network


def _volume(shape, n, seed, radius=3):
    return np.stack([disks(shape[1:], n, seed=seed + z, radius=radius) for z in range(shape[0])])


def test_covid_if_hdf5_channel_packing(tmp_path, server):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(12):
        labels = disks((40, 40), 10, seed=i, radius=3)
        with h5py.File(src / f"gt_image_{i:03d}.h5", "w") as f:
            f["raw/serum_IgG/s0"] = (labels * 3).astype(np.uint16)
            f["raw/nuclei/s0"] = (labels > 0).astype(np.uint16) * 7
            f["labels/cells/s0"] = labels
    config = published("covid-if", server, {"covid-if-groundtruth.zip": zip_tree(src, tmp_path / "c.zip")})
    samples = fetch_and_prepare(config, tmp_path / "data")
    assert [s.image_id for s in samples] == ["gt_image_010", "gt_image_011"]
    image = samples[0].image
    assert image.shape == (40, 40, 3) and not image[..., 2].any()
    np.testing.assert_array_equal(image[..., 0], samples[0].labels * 3)


def test_plantseg_volumes_sliced_with_slice_split(tmp_path, server):
    src = (
        tmp_path / "src"
    )  # the .h5 files are at the archive top (torch-em plantseg.py globs <unzipped>/*.h5)
    src.mkdir(parents=True)
    for name, seed in (("Movie2_T00010.h5", 0), ("Movie10_T00020.h5", 5)):  # lexicographic: Movie10 first
        labels = _volume((4, 36, 36), 5, seed) + 1  # id 1 is background in PlantSeg root
        with h5py.File(src / name, "w") as f:
            f["raw"] = (labels * 10).astype(np.uint8)
            f["label"] = labels
    config = published(
        "plantseg-root", server, {"root_test.zip": zip_tree(tmp_path / "src", tmp_path / "p.zip")}
    )
    split = config.split.model_copy(update={"options": {"start": 3, "level": "slice"}})  # 400 in the paper
    samples = fetch_and_prepare(config.model_copy(update={"split": split}), tmp_path / "data")
    assert [s.image_id for s in samples] == ["Movie10_T00020_z003"] + [
        f"Movie2_T00010_z{z:03d}" for z in range(4)
    ]
    assert all(s.labels.min() == 0 and len(np.unique(s.labels)) == 6 for s in samples)
    assert samples[0].meta["slice"] == 3


def test_zarr_reader(tmp_path, server):
    zarr = pytest.importorskip("zarr", reason="zarr is optional; only the zarr reader needs it")
    src = tmp_path / "src"
    for i in range(2):
        group = zarr.open_group(str(src / f"image_{i:04d}.zarr"), mode="w")
        labels = disks((32, 32), 4, seed=i)
        group.create_array("raw", data=(labels * 5).astype(np.uint8))
        group.create_array("labels", data=labels.astype(np.uint32))
    base = get_dataset_config("dsb").model_dump()
    base.update(
        id="zarr-demo",
        format={"reader": "zarr", "options": {"files": "*.zarr", "raw": "raw", "labels": "labels"}},
    )
    base["source"]["files"] = [{"url": "http://unused", "filename": "zarr.zip", "sha256": None}]
    config = published(
        DatasetConfig.model_validate(base), server, {"zarr.zip": zip_tree(src, tmp_path / "z.zip")}
    )
    samples = fetch_and_prepare(config, tmp_path / "data")
    assert [s.image_id for s in samples] == ["image_0000", "image_0001"]


def test_tissuenet_npz_manual_import(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1000, (3, 48, 48, 2)).astype(np.float32)
    y = np.stack([np.stack([disks((48, 48), 10, seed=i, radius=3)] * 2, axis=-1) for i in range(3)])
    folder = tmp_path / "src"  # the npz files are at the archive top (torch-em tissuenet.py _create_dataset)
    folder.mkdir(parents=True)
    np.savez(folder / "tissuenet_v1.1_test.npz", X=x, y=y)
    np.savez(folder / "tissuenet_v1.1_train.npz", X=x[:1], y=y[:1])
    archive = zip_tree(tmp_path / "src", tmp_path / "tissuenet_v1.1.zip")
    config = get_dataset_config("tissuenet")
    import_dataset(config, archive, tmp_path / "data")
    samples = list(load_dataset(config, tmp_path / "data"))
    assert len(samples) == 3
    image = samples[0].image
    assert image.dtype == np.uint8 and image.shape == (48, 48, 3) and not image[..., 2].any()
    cell = x[0, ..., 1]
    np.testing.assert_array_equal(
        image[..., 0], ((cell - cell.min()) / (cell.max() - cell.min() + 1e-7) * 255).astype(np.uint8)
    )
    np.testing.assert_array_equal(samples[0].labels, y[0, ..., 0])


def test_pannuke_npy_stack_padded(tmp_path, server):
    folder = tmp_path / "src" / "Fold 3"
    (folder / "images" / "fold3").mkdir(parents=True)
    (folder / "masks" / "fold3").mkdir(parents=True)
    masks = np.zeros((2, 32, 32, 6))
    for i in range(2):
        a, b = disks((32, 32), 3, seed=i), disks((32, 32), 3, seed=10 + i)
        b[a > 0] = 0
        masks[i, ..., 0], masks[i, ..., 2] = a, b  # ids repeat across classes
        masks[i, ..., 5] = (a == 0) & (b == 0)
    np.save(folder / "images" / "fold3" / "images.npy", np.full((2, 32, 32, 3), 200.0))
    np.save(folder / "masks" / "fold3" / "masks.npy", masks)
    config = published("pannuke", server, {"fold_3.zip": zip_tree(tmp_path / "src", tmp_path / "f.zip")})
    samples = fetch_and_prepare(config, tmp_path / "data")
    assert (
        len(samples) == 2 and samples[0].image.shape == (512, 512, 3) and samples[0].image.dtype == np.float64
    )  # as stored, as in the paper's TIFFs
    expected = len(np.unique(masks[0, ..., 0])) - 1 + len(np.unique(masks[0, ..., 2])) - 1
    assert len(np.unique(samples[0].labels)) - 1 == expected and not samples[0].labels[32:].any()


def test_lynsec_npy_pairs_and_parhyale_timepoints(tmp_path, server):
    src = tmp_path / "src"
    for folder in ("lynsec 1", "lynsec 2"):
        for i in range(5):
            labels = disks((32, 32), 4, seed=i)
            (src / folder).mkdir(parents=True, exist_ok=True)
            np.save(src / folder / f"{i}.npy", np.dstack([labels * 20] * 3 + [labels]).astype(np.uint8))
    config = published("lynsec", server, {"lynsec.zip": zip_tree(src, tmp_path / "l.zip")})
    samples = fetch_and_prepare(config, tmp_path / "data")
    assert len(samples) == 1 and samples[0].image.shape == (32, 32, 3)
    assert samples[0].meta["source"].startswith("lynsec 1/")

    psrc = tmp_path / "psrc"
    psrc.mkdir()
    series = np.zeros((50, 8, 40, 40), np.uint16)
    for k, t in enumerate([0, 10, 20, 30, 40, 49]):
        labels = _volume((8, 40, 40), 10, seed=10 * k, radius=2)
        series[t] = labels * 50
        tifffile.imwrite(psrc / f"Parhyale_instance-segmentation-labels_tp{t + 1:02d}.tif", labels)
    tifffile.imwrite(psrc / "Parhyale_H2B-EGFP_images_tp01-50.tif", series)
    config = published(
        "parhyale-regen", server, {"parhyale_regen_8252039.zip": zip_tree(psrc, tmp_path / "p.zip")}
    )
    samples = fetch_and_prepare(config, tmp_path / "pdata")
    assert len(samples) == 8  # 6 volumes x 8 slices, the first 40 slices are validation
    assert samples[0].image_id == "tp50_z000" and samples[0].meta["timepoint"] == 49
    np.testing.assert_array_equal(samples[0].image, series[49, 0])


def test_gonuclear_fixes_and_nis3d_foreground_crop(tmp_path, server):
    base = tmp_path / "g" / "Training image dataset_Tiff Files"
    for sample in ("1135", "1137"):
        labels = _volume((4, 64, 64), 20, seed=int(sample), radius=3)
        (base / sample).mkdir(parents=True)
        # the stored labels are flipped along y relative to the image; the reader flips them back
        tifffile.imwrite(
            base / sample / f"{sample}_n_H2BtdTomato.tif", (labels * 3).astype(np.uint16)[:, ::-1]
        )
        padded = np.pad(labels, ((0, 0), (0, 0), (0, 2)))  # labels one pixel wider: clipped to the image
        tifffile.imwrite(base / sample / f"{sample}_n_stain_StarDist_goldGT.tiff", padded)
    config = published("gonuclear", server, {"gonuclear.zip": zip_tree(tmp_path / "g", tmp_path / "g.zip")})
    split = config.split.model_copy(update={"options": {"start": 2, "level": "slice"}})
    samples = fetch_and_prepare(config.model_copy(update={"split": split}), tmp_path / "gdata")
    assert [s.image_id for s in samples] == [
        "1135_1135_n_H2BtdTomato_z002",
        "1135_1135_n_H2BtdTomato_z003",
        "1137_1137_n_H2BtdTomato_z000",
        "1137_1137_n_H2BtdTomato_z001",
        "1137_1137_n_H2BtdTomato_z002",
    ]  # 1137 loses its last slice
    s = samples[0]
    assert s.labels.shape == (64, 64)
    np.testing.assert_array_equal(s.image // 3, s.labels)  # labels flipped back onto the image

    root = tmp_path / "n" / "NIS3D" / "suggestive splitting" / "cross-image"
    vol = np.zeros((2, 600, 560), np.uint16)
    vol[:, 400:560, 20:200] = _volume((2, 160, 180), 20, seed=1, radius=4)
    (root / "test" / "S1").mkdir(parents=True)
    (root / "train" / "S2").mkdir(parents=True)
    tifffile.imwrite(root / "test" / "S1" / "data.tif", (vol > 0).astype(np.uint8) * 9)
    tifffile.imwrite(root / "test" / "S1" / "GroundTruth.tif", vol)
    tifffile.imwrite(root / "train" / "S2" / "data.tif", vol)
    config = published("nis3d", server, {"NIS3D.zip": zip_tree(tmp_path / "n", tmp_path / "n.zip")})
    samples = fetch_and_prepare(config, tmp_path / "ndata")
    assert len(samples) == 2 and samples[0].labels.shape == (512, 512)
    assert len(np.unique(samples[0].labels)) == 21  # every object kept by the foreground-centred crop
    assert samples[0].meta["crop"] == [88, 0, 512, 512]
