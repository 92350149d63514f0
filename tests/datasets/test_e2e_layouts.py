"""More datasets in their real layouts, each through its own config: served and downloaded (automatic ones) or
imported (manual ones), then prepared and loaded. Arrays are tiny; the paths and options are the real ones."""

from __future__ import annotations

import numpy as np
import pytest

from apgbench.datasets import get_dataset_config, load_dataset
from apgbench.datasets.manage import import_dataset

from ._helpers import disks, fetch_and_prepare, published, write, zip_tree

pytestmark = pytest.mark.network


def _img(labels, channels=0):
    grey = ((labels > 0) * 100 + 20).astype(np.uint8)
    return np.dstack([grey] * channels) if channels else grey


def _arvidsson(root):
    labels = disks((40, 40), 5)
    colours = np.array(
        [[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [0, 255, 255]], np.uint8
    )
    write(root / "test_nuclei" / "images" / "a1.png", _img(labels))
    write(root / "test_nuclei" / "annotations" / "a1.png", colours[labels])
    return 1


def _ifnuclei(root):
    for i in range(11):
        labels = disks((32, 32), 5, seed=i, radius=3)
        image = np.stack([_img(labels)] * 3) if i == 10 else _img(labels)  # one channel-first RGB raw image
        write(root / "rawimages" / f"s{i:02d}.tif", image)
        write(root / "groundtruth" / f"s{i:02d}.tif", labels)
    return 1


def _pnas(root):
    base = root / "PNAS" / "plant1"
    for t in (1, 2, 3):
        labels = np.stack([disks((96, 96), 50, seed=t + z, radius=2) for z in range(2)]) + 1
        write(base / "processed_tiffs" / f"t{t}_trim-acylYFP.tif", (labels * 2).astype(np.uint8))
        if t != 3:  # a stack without segmentation is skipped
            write(base / "segmentation_tiffs" / f"t{t}_trim-acylYFP_hmin_2_asf_1_s_2.00_clean_3.tif", labels)
    return 4


def _mouse_embryo(root):
    import h5py

    (root / "Membrane" / "val").mkdir(parents=True)
    labels = np.stack([disks((32, 32), 9, seed=z, radius=2) for z in range(102)])
    with h5py.File(root / "Membrane" / "val" / "e1.h5", "w") as f:
        f["raw"], f["label"] = (labels > 0).astype(np.uint8), labels
    return 2


def _omnipose(root):
    # torch-em omnipose.py unzips into data/ and globs data/bact_phase/..., data/worm/...: both at the top
    for kind in ("ecoli", "subtilis"):
        labels = disks((32, 32), 3, seed=len(kind))
        folder = root / "bact_phase" / "test_sorted" / kind
        write(folder / f"{kind}1.tif", _img(labels))
        write(folder / f"{kind}1_masks.tif", labels)
        write(folder / f"{kind}1_flows.tif", np.zeros((3, 32, 32), np.float32))
    labels = disks((32, 32), 3, seed=9)
    write(root / "worm" / "test" / "w1.png", _img(labels))
    write(root / "worm" / "test" / "w1_masks.png", labels.astype(np.uint8))
    write(root / "worm" / "train" / "w2.png", _img(labels))
    return 3


def _deepbacs(root):
    labels = disks((32, 32), 4)
    write(root / "mixed" / "test" / "source" / "b1.tif", _img(labels))
    write(root / "mixed" / "test" / "target" / "b1.tif", labels)
    write(root / "mixed" / "train" / "source" / "b2.tif", _img(labels))
    return 1


def _vicar(root):
    # torch-em vicar.py:47-55,91 unzips labelled.zip INTO labelled/ and globs labelled/<cell line>/: the
    # cell-line folders are at the archive top
    for line in ("A2058", "PC3"):
        labels = disks((32, 32), 4, seed=len(line))
        write(root / line / f"{line}_001_img.tif", _img(labels).astype(np.float32))
        write(root / line / f"{line}_001_mask.png", labels.astype(np.uint8))
    return 2


def _nuinsseg(root):
    for i in range(52):
        labels = disks((32, 32), 9, seed=i, radius=2)
        organ = "human bladder" if i < 30 else "mouse kidney"
        write(root / organ / "tissue images" / f"{i}.png", _img(labels, 4 if i == 51 else 3))  # RGBA dropped
        write(root / organ / "label masks modify" / f"{i}.tif", labels)
    return 1


def _cryonuseg(root):
    for i in range(5):
        labels = disks((32, 32), 4, seed=i)
        write(root / "tissue images" / f"c{i}.tif", _img(labels, 3))
        write(root / "Annotator 1 (biologist)" / "label masks modify" / f"c{i}.tif", labels)
        write(root / "Annotator 2 (bioinformatician)" / "label masks modify" / f"c{i}.tif", labels * 0)
    return 1


def _dynamicnuclearnet(root):
    y = np.stack([disks((32, 32), 5, seed=i, radius=3)[..., None] for i in range(2)])
    (root / "DynamicNuclearNet-segmentation-v1_0").mkdir(parents=True)
    np.savez(root / "DynamicNuclearNet-segmentation-v1_0" / "test.npz", X=(y * 7).astype(np.float32), y=y)
    return 2


def _cellbindb(root):
    for modality in ("10×Genomics_DAPI", "DAPI", "mIF", "HE"):
        for i in range(21):
            labels = disks((16, 16), 2, seed=i, radius=2)
            folder = root / "Other" / modality / f"s{i:02d}"
            write(folder / f"s{i:02d}-img.tif", _img(labels, 3 if modality == "mIF" else 0))
            write(folder / f"s{i:02d}-instancemask.tif", labels)
    (root / "Other" / "DAPI" / "s00" / "s00-img.tif").write_bytes(b"corrupt")  # dropped before the split
    return 2  # 10x and mIF: image 21 of 21 each; DAPI: 20 readable pairs left, all in the first 20 (val)


def _deepseas(root):
    labels = disks((48, 48), 10, seed=3, radius=3)
    base = root / "segmentation_dataset" / "test"
    write(base / "images" / "d1.png", _img(labels))
    write(base / "masks" / "d1.png", ((labels > 0) * 255).astype(np.uint8))
    return 1


AUTOMATIC = {
    "arvidsson": _arvidsson,
    "ifnuclei": _ifnuclei,
    "pnas-arabidopsis": _pnas,
    "mouse-embryo": _mouse_embryo,
    "omnipose": _omnipose,
    "deepbacs": _deepbacs,
    "vicar": _vicar,
}
MANUAL_ZIP = {"nuinsseg": _nuinsseg, "cryonuseg": _cryonuseg, "dynamicnuclearnet": _dynamicnuclearnet}
MANUAL_FOLDER = {"cellbindb": _cellbindb, "deepseas": _deepseas}


@pytest.mark.parametrize("dataset_id", sorted(AUTOMATIC))
def test_automatic_layout(dataset_id, tmp_path, server):
    root = tmp_path / "src"
    expected = AUTOMATIC[dataset_id](root)
    config = get_dataset_config(dataset_id)
    (name,) = [f.filename for f in config.source.files]
    samples = fetch_and_prepare(
        published(config, server, {name: zip_tree(root, tmp_path / name)}), tmp_path / "d"
    )
    assert len(samples) == expected
    assert all(s.labels.shape == s.image.shape[:2] and s.labels.any() for s in samples)


@pytest.mark.parametrize("dataset_id", sorted(MANUAL_ZIP) + sorted(MANUAL_FOLDER))
def test_manual_layout(dataset_id, tmp_path):
    root = tmp_path / "src"
    config = get_dataset_config(dataset_id)
    if dataset_id in MANUAL_ZIP:
        expected = MANUAL_ZIP[dataset_id](root)
        path = zip_tree(root, tmp_path / config.source.files[0].filename)
    else:
        expected, path = MANUAL_FOLDER[dataset_id](root), root
    import_dataset(config, path, tmp_path / "d")
    samples = list(load_dataset(config, tmp_path / "d"))
    assert len(samples) == expected
    if dataset_id == "nuinsseg":
        assert samples[0].image.shape == (32, 32, 3)
    if dataset_id == "deepseas":
        assert len(np.unique(samples[0].labels)) == 11  # binary mask split into components
