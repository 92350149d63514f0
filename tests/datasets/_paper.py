"""Test oracle: the steps of the authors' ``prepare_data_paths`` (micro-sam ``scripts/apg_experiments/util.py``
at commit 4f6d45e2) that run after torch-em has produced its files, written out from that source so the
torch-em oracle tests can compare apgbench's prepared split with what the paper's code would have stored.

Line numbers refer to util.py at 4f6d45e2. Only tests import this module.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from apgbench.datasets import get_dataset_config, load_dataset
from apgbench.datasets.manage import import_dataset


def center_crop(image: np.ndarray, seg: np.ndarray | None = None, target: tuple[int, int] = (512, 512)):
    """``_make_center_crop`` (util.py:110-155): shape[:2] is taken as (H, W) whatever the layout."""
    crop_h, crop_w = min(target[0], image.shape[0]), min(target[1], image.shape[1])
    top, left = (image.shape[0] - crop_h) // 2, (image.shape[1] - crop_w) // 2
    if seg is not None and np.any(seg != 0):
        ys, xs = np.where(seg != 0)
        cy, cx = (ys.min() + ys.max()) // 2, (xs.min() + xs.max()) // 2
        top = max(0, min(cy - crop_h // 2, image.shape[0] - crop_h))
        left = max(0, min(cx - crop_w // 2, image.shape[1] - crop_w))
    out = image[top : top + crop_h, left : left + crop_w, ...]
    return out if seg is None else (out, seg[top : top + crop_h, left : left + crop_w])


def pad_image(image: np.ndarray, target: tuple[int, int] = (512, 512)) -> np.ndarray:
    """``_pad_image`` (util.py:85-95): zero-pad bottom/right."""
    pad = [max(0, t - s) for s, t in zip(image.shape[:2], target)]
    if any(p > 0 for p in pad):
        widths = [(0, pad[0]), (0, pad[1])] + ([(0, 0)] if image.ndim == 3 else [])
        image = np.pad(image, widths)
    return image


def norm_image(image: np.ndarray) -> np.ndarray:
    """``_norm_image`` (util.py:98-107), TissueNet's per-channel scaling to uint8."""
    assert image.shape[-1] == 3
    image = image.astype("float32")
    image -= image.min(axis=(0, 1))
    image /= image.max(axis=(0, 1)) + 1e-7
    image *= 255
    return image.astype("uint8")


def process(images, labels, criterion, ignore_label=None, connected=False):
    """``_process_images`` (util.py:22-76) for the test split: the (image, label) pairs it would store."""
    from skimage.measure import label as connected_components

    kept = []
    for im, label in zip(images, labels):
        if im.ndim == 3 and im.shape[0] == 3:  # util.py:45-46
            im = im.transpose(1, 2, 0)
        label = np.array(label, copy=True)
        if ignore_label:
            label[label == ignore_label] = 0
        if connected:
            label = connected_components(label)
        count = len(np.unique(label))
        if count == 1 or (criterion is not None and count < criterion):
            continue
        kept.append((im, label))
    return kept


def slices(volumes):
    """``[im for vol in volumes for im in vol]`` (util.py:583, 605, 627, ...)."""
    return [plane for vol in volumes for plane in vol]


def prepare_with_apgbench(dataset_id: str, archive: Path, data_root: Path, config=None):
    """Import ``archive`` through apgbench's real unpack-and-prepare path; return the prepared samples."""
    config = config or get_dataset_config(dataset_id)
    files = [
        f.model_copy(update={"sha256": None}) for f in config.source.files
    ]  # a built copy, not the real one
    config = config.model_copy(update={"source": config.source.model_copy(update={"files": files})})
    import_dataset(config, archive, data_root)
    return list(load_dataset(config, data_root))


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """True if two label images hold the same objects (ids may differ, background must be 0 in both)."""
    if a.shape != b.shape or not np.array_equal(a == 0, b == 0):
        return False
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    return len(np.unique(pairs[0])) == len(np.unique(pairs[1])) == pairs.shape[1]


def assert_same(samples, expected, partition: bool = False) -> None:
    """apgbench's samples equal the paper's (image, label) pairs, in order: images bit for bit (dtype too)."""
    assert len(samples) == len(expected), (len(samples), len(expected))
    for sample, (image, label) in zip(samples, expected):
        assert sample.image.dtype == image.dtype, (sample.image_id, sample.image.dtype, image.dtype)
        np.testing.assert_array_equal(sample.image, image, err_msg=sample.image_id)
        if partition:
            assert same_partition(sample.labels, np.asarray(label)), sample.image_id
        else:
            np.testing.assert_array_equal(sample.labels, label, err_msg=sample.image_id)


def copy_to(archive: Path, folder: Path, name: str) -> Path:
    """Place ``archive`` where a torch-em loader expects its download (no network: the file exists)."""
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copyfile(archive, folder / name))
