"""3D test sets (`<id>-3d`): configs derived from the volumetric datasets, and the sub-volume rule end to end
on small volumes in the real layouts (through the local server and the real readers)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import tifffile

from apgbench.datasets import get_dataset_config, list_datasets
from apgbench.datasets.volumes import depth_block, window_slices
from apgbench.methods import trained_on

from ._helpers import disks, fetch_and_prepare, published, zip_tree

VOLUMETRIC_2D = sorted(c.id for c in list_datasets() if c.ndim == 3 and not c.volumetric and not c.builtin)


def _volume(shape, n, seed, radius=3):
    return np.stack([disks(shape[1:], n, seed=seed + z, radius=radius) for z in range(shape[0])])


def _with_split(config, **options):
    split = config.split.model_copy(update={"options": {**config.split.options, **options}})
    return config.model_copy(update={"split": split})


def _with_depth(config, depth):
    volume = config.preparation.volume.model_copy(update={"depth": depth})
    return config.model_copy(update={"preparation": config.preparation.model_copy(update={"volume": volume})})


def test_every_volumetric_dataset_has_a_3d_set():
    assert VOLUMETRIC_2D == sorted(
        [
            "gonuclear",
            "nis3d",
            "parhyale-regen",
            "plantseg-root",
            "plantseg-ovules",
            "pnas-arabidopsis",
            "mouse-embryo",
        ]
    )
    for dataset_id in VOLUMETRIC_2D:
        flat, vol = get_dataset_config(dataset_id), get_dataset_config(f"{dataset_id}-3d")
        assert vol.volumetric and not flat.volumetric and vol.ndim == 3 and vol.domain == flat.domain
        # same files, same reader: `python scripts/make_3d_configs.py` after changing the 2D config
        assert vol.source == flat.source and vol.format == flat.format
        assert vol.split.rule == flat.split.rule and vol.split.options == flat.split.options
        assert vol.preparation.volume.depth == 32 and vol.preparation.crop == 512
        assert vol.preparation.background_label == flat.preparation.background_label
        assert vol.preparation.min_objects == flat.preparation.min_objects
        assert (
            trained_on(vol.id) == trained_on(flat.id) and vol.paper_id is None
        )  # † from the methods' metadata
        assert "Sub-volume rule" in vol.notes


def test_window_and_depth_rules():
    # volumes of 4 and 6 slices, the first 5 concatenated slices are validation
    assert window_slices(4, 0, (5, None)) == (4, 4)
    assert window_slices(6, 4, (5, None)) == (1, 6)
    assert window_slices(6, 4, (0, 7)) == (0, 3)
    assert window_slices(6, 0, None) == (0, 6)
    labels = np.zeros((20, 4, 4), np.uint8)
    labels[10:17, 1, 1] = 1  # labelled z-range 10..16, middle 13
    assert depth_block(labels, 4) == (12, 16)
    assert depth_block(labels, 5) == (11, 16)
    assert depth_block(labels, 19) == (1, 20)
    assert depth_block(labels, None) == (0, 20) == depth_block(labels, 50)
    labels[:] = 0
    labels[0, 1, 1] = 1
    assert depth_block(labels, 4) == (0, 4)  # clipped at the volume's start


@pytest.mark.network
def test_plantseg_root_3d_keeps_the_2d_test_voxels(tmp_path, server):
    src = tmp_path / "src"  # the .h5 files are at the archive top, as in the real zip
    src.mkdir(parents=True)
    for name, seed in (("Movie2_T00010.h5", 0), ("Movie10_T00020.h5", 5)):  # lexicographic: Movie10 first
        labels = _volume((4, 36, 36), 5, seed) + 1  # id 1 is background in PlantSeg root
        with h5py.File(src / name, "w") as f:
            f["raw"] = (labels * 10).astype(np.uint8)
            f["label"] = labels
    archive = zip_tree(tmp_path / "src", tmp_path / "p.zip")
    flat = _with_split(published("plantseg-root", server, {"root_test.zip": archive}), start=3)
    vol = _with_split(published("plantseg-root-3d", server, {"root_test.zip": archive}), start=3)
    slices = fetch_and_prepare(flat, tmp_path / "d2")
    volumes = fetch_and_prepare(vol, tmp_path / "d3")
    assert [s.image_id for s in volumes] == ["Movie10_T00020", "Movie2_T00010"]
    assert [s.labels.shape for s in volumes] == [(1, 36, 36), (4, 36, 36)]
    assert volumes[0].meta["slices"] == [3, 4] and volumes[1].meta["slices"] == [0, 4]
    # exactly the voxels of the paper's 2D test slices, background id 1 -> 0
    np.testing.assert_array_equal(
        np.concatenate([s.labels for s in volumes]), np.stack([s.labels for s in slices])
    )
    np.testing.assert_array_equal(
        np.concatenate([s.image for s in volumes]), np.stack([s.image for s in slices])
    )
    assert all(s.labels.min() == 0 for s in volumes)


@pytest.mark.network
def test_gonuclear_3d_reader_fixes_and_depth_block(tmp_path, server):
    base = tmp_path / "g" / "Training image dataset_Tiff Files"
    for sample in ("1135", "1137"):
        labels = _volume((8, 64, 64), 20, seed=int(sample), radius=3)
        labels[:2] = 0  # unlabelled bottom slices: the depth block centres on the labelled ones
        (base / sample).mkdir(parents=True)
        tifffile.imwrite(
            base / sample / f"{sample}_n_H2BtdTomato.tif", (labels * 3).astype(np.uint16)[:, ::-1]
        )
        tifffile.imwrite(
            base / sample / f"{sample}_n_stain_StarDist_goldGT.tiff", np.pad(labels, ((0, 0), (0, 0), (0, 2)))
        )
    archive = zip_tree(tmp_path / "g", tmp_path / "g.zip")
    config = _with_depth(
        _with_split(published("gonuclear-3d", server, {"gonuclear.zip": archive}), start=2), 3
    )
    volumes = fetch_and_prepare(config, tmp_path / "gdata")
    assert [s.image_id for s in volumes] == ["1135_1135_n_H2BtdTomato", "1137_1137_n_H2BtdTomato"]
    # 1135: test slices 2..7, labelled 2..7, middle 4 -> [3, 6); 1137 (last slice dropped: 7 slices, all test)
    assert volumes[0].meta["slices"] == [3, 6] and volumes[1].meta["slices"] == [3, 6]
    for s in volumes:
        assert s.labels.shape == s.image.shape == (3, 64, 64)
        np.testing.assert_array_equal(s.image // 3, s.labels)  # labels flipped back onto the image, per slice


@pytest.mark.network
def test_nis3d_3d_foreground_crop_and_min_objects(tmp_path, server):
    root = tmp_path / "n" / "NIS3D" / "suggestive splitting" / "cross-image"
    vol = np.zeros((3, 600, 560), np.uint16)
    vol[:, 400:560, 20:200] = _volume((3, 160, 180), 20, seed=1, radius=4)
    sparse = np.zeros_like(vol)
    sparse[:, 10:60, 10:60] = _volume((3, 50, 50), 3, seed=2, radius=4)  # 4 values < min_objects 20
    for name, labels in (("S1", vol), ("S3", sparse)):
        (root / "test" / name).mkdir(parents=True)
        tifffile.imwrite(root / "test" / name / "data.tif", (labels > 0).astype(np.uint8) * 9)
        tifffile.imwrite(root / "test" / name / "GroundTruth.tif", labels)
    config = published("nis3d-3d", server, {"NIS3D.zip": zip_tree(tmp_path / "n", tmp_path / "n.zip")})
    volumes = fetch_and_prepare(config, tmp_path / "ndata")
    assert len(volumes) == 1 and volumes[0].labels.shape == (3, 512, 512)
    assert volumes[0].meta["crop"] == [88, 0, 512, 512]  # the same window as the 2D set's slices
    assert len(np.unique(volumes[0].labels)) == len(np.unique(vol))
