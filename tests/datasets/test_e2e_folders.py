"""Image-folder layouts end to end: build the real archive layout, serve it on localhost, then run the real
download -> verify -> extract -> prepare path with the dataset's own config and check the prepared split."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import tifffile

from apgbench.datasets.manage import import_dataset
from apgbench.datasets.prepare import select_split

from ._helpers import disks, fetch_and_prepare, published, tar_tree, write, zip_tree

pytestmark = pytest.mark.network


def _grey(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).integers(0, 30, labels.shape)
    return ((labels > 0) * 150 + noise).astype(np.uint8)


def _center(array: np.ndarray, size: int = 512) -> np.ndarray:
    top, left = (
        (array.shape[0] - min(size, array.shape[0])) // 2,
        (array.shape[1] - min(size, array.shape[1])) // 2,
    )
    return array[top : top + size, left : left + size]


def test_dsb_real_images(tmp_path, server, shared_data):
    src = tmp_path / "src" / "dsb2018"
    originals = {}
    for stem in ("stardist_tests_img2d", "stardist_data_img2d"):
        image = tifffile.imread(shared_data / "nuclei-fluo" / "dsb2018" / f"{stem}.tif")
        labels = tifffile.imread(shared_data / "nuclei-fluo" / "dsb2018" / f"{stem}_label.tif")
        write(src / "test" / "images" / f"{stem}.tif", image)
        write(src / "test" / "masks" / f"{stem}.tif", labels)
        write(src / "train" / "images" / f"{stem}.tif", image)  # train must not be read
        originals[f"test_images_{stem}"] = (image, labels)
    config = published("dsb", server, {"dsb2018.zip": zip_tree(tmp_path / "src", tmp_path / "dsb2018.zip")})
    samples = fetch_and_prepare(config, tmp_path / "data")
    assert sorted(s.image_id for s in samples) == sorted(originals)
    for sample in samples:  # dsb is used as is: no crop, no filter
        image, labels = originals[sample.image_id]
        np.testing.assert_array_equal(sample.image, image)
        np.testing.assert_array_equal(sample.labels, labels)


def test_u20s_two_archives_index_split_and_crop(tmp_path, server, shared_data):
    images, masks = tmp_path / "images_src" / "images", tmp_path / "masks_src" / "masks"
    for i in range(25):  # natsorted first 25 are validation (natsort is case-sensitive: "A" < "IXM")
        labels = disks((40, 40), 5, seed=i, radius=3)
        write(images / f"A{i:02d}.tif", _grey(labels).astype(np.uint16))
        write(
            masks / f"A{i:02d}.png",
            np.dstack([labels.astype(np.uint8)] * 3 + [np.full((40, 40), 255, np.uint8)]),
        )
    real = {}
    for stem in ("IXMtest_A02_s1", "IXMtest_B22_s8"):
        image = tifffile.imread(shared_data / "nuclei-fluo" / "bbbc039" / f"{stem}.tif")
        labels = tifffile.imread(shared_data / "nuclei-fluo" / "bbbc039" / f"{stem}_label.tif")
        write(images / f"{stem}.tif", image)
        rgba = np.dstack([labels.astype(np.uint8)] * 3 + [np.full(labels.shape, 255, np.uint8)])
        write(masks / f"{stem}.png", rgba)
        real[f"images_{stem}"] = (image, labels)
    write(tmp_path / "masks_src" / "__MACOSX" / "masks" / "._junk.png", np.zeros((4, 4), np.uint8))
    config = published(
        "u20s",
        server,
        {
            "images.zip": zip_tree(tmp_path / "images_src", tmp_path / "images.zip"),
            "masks.zip": zip_tree(tmp_path / "masks_src", tmp_path / "masks.zip"),
        },
    )
    samples = fetch_and_prepare(config, tmp_path / "data")
    assert sorted(s.image_id for s in samples) == sorted(real)
    for sample in samples:
        image, labels = real[sample.image_id]
        assert sample.image.shape == (512, 512) and sample.meta["crop"] == [4, 92, 512, 512]
        np.testing.assert_array_equal(sample.image, _center(image))
        np.testing.assert_array_equal(sample.labels > 0, _center(labels) > 0)


def test_usiigaci_repository_snapshot(tmp_path, server, shared_data):
    repo = tmp_path / "src" / "Usiigaci-9501d80c747cf82870dd596818fcf5c28c94d733"
    import imageio.v3 as iio

    for i, stem in enumerate(("set01", "set30"), start=1):
        image = tifffile.imread(shared_data / "cells-labelfree" / "usiigaci" / f"{stem}.tif")
        labels = tifffile.imread(shared_data / "cells-labelfree" / "usiigaci" / f"{stem}_label.tif")
        write(repo / "Mask R-CNN" / "train" / f"set{i}" / "raw.tif", image)
        iio.imwrite(repo / "Mask R-CNN" / "train" / f"set{i}" / "instances_ids.png", labels.astype(np.uint16))
        write(repo / "Mask R-CNN" / "val" / "set46" / "raw.tif", image)
    small = disks((64, 64), 4)
    write(repo / "ExampleData" / "T98G_sample" / "f01.tif", _grey(small))
    write(repo / "ExampleData" / "T98G_sample_mask_avg" / "f01.png", small.astype(np.uint8))
    (repo / "README.md").write_text("repository files are ignored")
    config = published(
        "usiigaci", server, {"Usiigaci-9501d80c.zip": zip_tree(tmp_path / "src", tmp_path / "u.zip")}
    )
    assert config.source.files[0].sha256 is None  # GitHub archives publish no checksum
    samples = fetch_and_prepare(config, tmp_path / "data")
    assert [s.image_id for s in samples] == [
        "Mask_R-CNN_train_set1_raw",
        "Mask_R-CNN_train_set2_raw",
        "ExampleData_T98G_sample_f01",
    ]
    assert samples[0].image.shape == (512, 512) and samples[2].image.shape == (64, 64)


def test_bitdepth_nested_zip_and_per_group_split(tmp_path, server):
    data = tmp_path / "data_src"
    for mag in ("20x", "40x air"):
        for i in range(6):
            labels = disks((32, 32), 3, seed=i)
            write(data / mag / "images_16bit" / f"img_{i}.tif", _grey(labels).astype(np.uint16))
            write(data / mag / "images_8bit" / f"img_{i}.tif", _grey(labels))
            write(data / mag / "label masks" / f"img_{i}.tif", labels)
    repo = tmp_path / "repo" / "BitDepth_NucSeg-e235d31d09779cf2adf075254ce337157bbffc6a"
    (repo / "data").mkdir(parents=True)
    zip_tree(data, repo / "data" / "data.zip")
    config = published(
        "bitdepth-nucseg",
        server,
        {"BitDepth_NucSeg-e235d31d.zip": zip_tree(tmp_path / "repo", tmp_path / "b.zip")},
    )
    samples = fetch_and_prepare(config, tmp_path / "cache")
    assert [s.image_id for s in samples] == [
        f"{m}_images_16bit_img_{i}" for m in ("20x", "40x_air") for i in (4, 5)
    ]
    assert {s.meta["group"] for s in samples} == {"20x", "40x air"}


def test_tnbc_binary_masks_seeded_split(tmp_path, server):
    src = tmp_path / "src" / "TNBC_NucleiSegmentation"
    for i in range(10):
        labels = disks((64, 64), 10, seed=i, radius=4)
        rgba = np.dstack([_grey(labels, i)] * 3 + [np.full((64, 64), 255, np.uint8)])
        write(src / "Slide_01" / f"01_{i}.png", rgba)
        write(src / "GT_01" / f"01_{i}.png", ((labels > 0) * 255).astype(np.uint8))
    config = published(
        "tnbc", server, {"TNBC_NucleiSegmentation.zip": zip_tree(tmp_path / "src", tmp_path / "t.zip")}
    )
    samples = fetch_and_prepare(config, tmp_path / "data")
    assert len(samples) == 2  # ceil(20% of 10)
    assert all(s.image.shape == (64, 64, 3) and len(np.unique(s.labels)) == 11 for s in samples)
    assert not config.split.deterministic_in_paper and config.split.seed is not None


def test_toiam_ctc_layout_and_cytodark0_fold_csv(tmp_path, server):
    src = tmp_path / "toiam"
    for t in range(5):
        labels = disks((32, 32), 5, seed=t, radius=3)
        write(src / "01" / f"t{t:03d}.tif", _grey(labels))
        write(src / "01_GT" / "SEG" / f"man_seg{t:03d}.tif", labels)
    config = published("toiam", server, {"ctc_format.zip": zip_tree(src, tmp_path / "ctc.zip")})
    assert len(fetch_and_prepare(config, tmp_path / "data")) == 5  # fewer than 200 frames: all are test

    base = tmp_path / "cyto" / "cytoDArk0" / "20x" / "1024x1024"
    rows = []
    for i, fold in enumerate([0, 1, 2, 2]):
        labels = disks((600, 560), 6, seed=i, radius=30)
        write(base / "image" / f"c{i}.png", np.dstack([_grey(labels)] * 3))
        write(base / "label" / f"c{i}.tiff", labels)
        rows.append({"img_id": f"c{i}", "fold": fold})
    with open(base / "folds.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["img_id", "fold"])
        writer.writeheader()
        writer.writerows(rows)
    config = published(
        "cytodark0", server, {"cytoDArk0.zip": zip_tree(tmp_path / "cyto", tmp_path / "c.zip")}
    )
    samples = fetch_and_prepare(config, tmp_path / "data")
    assert [s.image_id for s in samples] == ["image_c2", "image_c3"]
    assert samples[0].image.shape == (512, 512, 3)


def test_ihc_tma_npy_masks(tmp_path, server):
    src = tmp_path / "src" / "IHC_TMA_dataset"
    for name in ("fold1_1", "fold3_1", "fold3_2"):
        labels = disks((48, 48), 6, seed=len(name) + int(name[-1]))
        write(src / "images" / f"{name}.png", np.dstack([_grey(labels)] * 3))
        channels = np.stack([(labels % 2 == 1) & (labels > 0), (labels % 2 == 0) & (labels > 0)]).astype(
            np.uint8
        )
        write(src / "masks" / f"{name}.npy", channels)
    config = published(
        "ihc-tma", server, {"IHC_TMA_dataset.zip": zip_tree(tmp_path / "src", tmp_path / "i.zip")}
    )
    samples = fetch_and_prepare(config, tmp_path / "data")
    assert [s.image_id for s in samples] == [
        "IHC_TMA_dataset_images_fold3_1",
        "IHC_TMA_dataset_images_fold3_2",
    ]
    assert all(len(np.unique(s.labels)) == 7 for s in samples)


def test_manual_cellpose_and_yeaz_tarball(tmp_path):
    import imageio.v3 as iio

    src = tmp_path / "cp" / "test"
    for i in range(3):
        labels = disks((40, 48), 4, seed=i)
        write(src / f"{i:03d}_img.png", np.dstack([_grey(labels)] * 3))
        iio.imwrite(src / f"{i:03d}_masks.png", labels.astype(np.uint16))
    archive = zip_tree(tmp_path / "cp", tmp_path / "test.zip")
    from apgbench.datasets import get_dataset_config, load_dataset

    config = get_dataset_config("cellpose")
    _, notes = import_dataset(config, archive, tmp_path / "data")
    assert len(load_dataset(config, tmp_path / "data")) == 3 and "No published checksum" in notes[0]

    ysrc = tmp_path / "y" / "gold-standard-BF-V-1"
    for i in range(5):
        labels = disks((40, 40), 5, seed=i, radius=3)
        write(ysrc / f"{i}_im.tif", _grey(labels))
        write(ysrc / f"{i}_mask.tif", labels)
    tarball = tar_tree(tmp_path / "y", tmp_path / "gold-standard-BF-V-1.tar.gz")
    yeaz = get_dataset_config("yeaz")
    import_dataset(yeaz, tarball, tmp_path / "data")
    first = [s.image_id for s in load_dataset(yeaz, tmp_path / "data")]
    import_dataset(yeaz, tarball, tmp_path / "data2")
    assert first == [s.image_id for s in load_dataset(yeaz, tmp_path / "data2")] and len(first) == 1


def test_seeded_split_is_stable_and_stratified():
    from apgbench.datasets.readers import Entry
    from apgbench.datasets.schema import Split

    entries = [Entry(id=f"{g}_{i}", load=lambda: None, group=g) for g in ("a", "b") for i in range(10)]
    rule = Split(description="x", rule="seeded-random", seed=42, options={"fraction": 0.2, "stratify": True})
    chosen = [e.id for e in select_split(entries, rule)]
    assert sorted(chosen) == sorted(e.id for e in select_split(list(reversed(entries)), rule))  # order-free
    assert sum(c.startswith("a") for c in chosen) == 2 and sum(c.startswith("b") for c in chosen) == 2


def test_mat_labels_hovernet_layout(tmp_path, server, shared_data):
    """``.mat`` instance maps (HoVer-Net/CoNSeP layout), read with real H&E patches."""
    import imageio.v3 as iio
    from scipy.io import savemat

    from apgbench.datasets import DatasetConfig, get_dataset_config

    src = tmp_path / "src" / "Test"
    folder = shared_data / "nuclei-histo" / "consep_patches"
    for stem in ("patch1", "patch2"):
        image = iio.imread(folder / f"{stem}.png")
        write(src / "Images" / f"{stem}.png", image)
        (src / "Labels").mkdir(parents=True, exist_ok=True)
        savemat(src / "Labels" / f"{stem}.mat", {"inst_map": tifffile.imread(folder / f"{stem}_label.tif")})
    data = get_dataset_config("dsb").model_dump()
    data.update(
        id="consep-demo",
        domain="nuclei-histo",
        format={
            "reader": "image-folder",
            "options": {
                "images": "Test/Images/*.png",
                "label_sub": ["^Test/Images/(.*)\\.png$", "Test/Labels/\\1.mat"],
                "mat_key": "inst_map",
            },
        },
        preparation={"crop": None, "channels": "rgb"},
    )
    data["source"]["files"] = [{"url": "http://unused", "filename": "consep.zip", "sha256": None}]
    config = published(
        DatasetConfig.model_validate(data),
        server,
        {"consep.zip": zip_tree(tmp_path / "src", tmp_path / "c.zip")},
    )
    samples = fetch_and_prepare(config, tmp_path / "data")
    assert [s.image_id for s in samples] == ["Test_Images_patch1", "Test_Images_patch2"]
    np.testing.assert_array_equal(samples[0].labels, tifffile.imread(folder / "patch1_label.tif"))
    assert samples[0].image.shape == (256, 256, 3)
