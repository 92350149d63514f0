"""The preparation rules on small arrays: crop, object minimum, channels, padding, resize, slicing."""

from __future__ import annotations

import numpy as np
import pytest

from apgbench.datasets.prepare import crop_box, iter_samples, prepare_image, select_split
from apgbench.datasets.readers import Entry, ReaderError
from apgbench.datasets.readers._base import to_instances
from apgbench.datasets.schema import Preparation, Split

from ._helpers import disks


def test_min_objects_counts_background_like_micro_sam():
    labels = disks((64, 64), 4)
    image = labels.astype(np.uint8)
    assert prepare_image(image, labels, Preparation(crop=None, min_objects=5)) is not None  # 5 unique values
    assert prepare_image(image, labels, Preparation(crop=None, min_objects=6)) is None
    assert prepare_image(image, np.zeros_like(labels), Preparation(crop=None)) is None  # empty: dropped


def test_center_and_foreground_crop():
    labels = np.zeros((600, 700), np.uint16)
    labels[500:580, 10:60] = 1
    assert crop_box(labels, 512, "center") == (44, 94, 512, 512)
    assert crop_box(labels, 512, "foreground-center") == (88, 0, 512, 512)
    assert crop_box(labels[:300], 512, "center") == (0, 94, 300, 512)  # a short axis is kept as is
    assert (
        prepare_image(labels.astype(np.uint8), labels, Preparation(crop=512)) is None
    )  # object cropped away
    image, out, meta = prepare_image(
        labels.astype(np.uint8), labels, Preparation(crop=512, crop_mode="foreground-center")
    )
    assert (
        image.shape == out.shape == (512, 512) and meta["crop"] == [88, 0, 512, 512] and out.sum() == 80 * 50
    )


def test_channels_padding_resize_background():
    labels = disks((40, 40), 3) + 1  # 1 marks background
    rgba_first = np.stack([labels] * 4).astype(np.uint8)  # channel-first RGBA
    prep = Preparation(crop=None, channels="rgb", background_label=1, pad_to=64)
    image, out, _ = prepare_image(rgba_first, labels, prep)
    assert image.shape == (64, 64, 3) and out.shape == (64, 64) and out.min() == 0 and not out[40:].any()
    assert (
        prepare_image(
            rgba_first, labels, Preparation(crop=None, channels="rgb", channel_options={"drop_other": True})
        )
        is None
    )
    two = np.stack([labels * 2.0, labels * 3.0], axis=-1)
    packed, _, _ = prepare_image(
        two,
        labels,
        Preparation(
            crop=None, channels="pack", channel_options={"order": [1, 0], "normalize": "minmax-uint8"}
        ),
    )
    assert packed.shape == (40, 40, 3) and packed.dtype == np.uint8 and packed[..., 0].max() >= 254
    resized, rlabels, _ = prepare_image(labels.astype(np.uint16), labels, Preparation(crop=None, resize=80))
    assert resized.shape == rlabels.shape == (80, 80) and set(np.unique(rlabels)) == set(np.unique(labels))
    with pytest.raises(ReaderError, match="does not match"):
        prepare_image(np.zeros((10, 12)), np.zeros((10, 10), np.uint16), Preparation(crop=None))


def test_label_modes():
    rgb = np.zeros((10, 10, 3), np.uint8)
    rgb[1:3, 1:3] = (255, 0, 0)
    rgb[1:3, 3:5] = (0, 255, 0)  # touching, different colour: separate objects
    rgb[7:9, 7:9] = (255, 0, 0)  # same colour elsewhere: split by connected components
    assert len(np.unique(to_instances(rgb, "rgb-colours"))) == 4
    stacked = np.zeros((2, 10, 10), np.uint8)
    stacked[0, :3, :3], stacked[1, 6:, 6:] = 1, 1
    assert to_instances(stacked, "sum-components").max() == 2
    assert to_instances(np.array([[-1, 0], [2, 2]]), "instances").tolist() == [[0, 0], [2, 2]]


def test_index_rules_and_slice_level_split():
    entries = [Entry(id=f"{g}{i}", load=lambda: None, group=g) for g in "ab" for i in range(5)]
    assert [
        e.id for e in select_split(entries, Split(description="x", rule="index", options={"start": -2}))
    ] == ["b3", "b4"]
    per_group = Split(description="x", rule="index", options={"start": 3, "per_group": True})
    assert [e.id for e in select_split(entries, per_group)] == ["a3", "a4", "b3", "b4"]

    from apgbench.datasets import get_dataset_config

    config = get_dataset_config("mouse-embryo")
    volume = np.stack([disks((32, 32), 10, seed=z, radius=2) for z in range(3)])
    vol_entries = [Entry(id=f"v{i}", load=lambda: (volume, volume)) for i in range(2)]
    split = config.split.model_copy(update={"options": {"start": 4, "level": "slice"}})
    samples = list(iter_samples(config.model_copy(update={"split": split}), vol_entries))
    assert [s.image_id for s in samples] == ["v1_z001", "v1_z002"]


UNFILTERED = ("dsb", "bitdepth-nucseg", "cellpose", "cellbindb", "ihc-tma", "lynsec", "cryonuseg")


@pytest.mark.parametrize("dataset_id", UNFILTERED)
def test_datasets_taken_straight_from_torch_em_keep_empty_images(dataset_id):
    # util.py:697-755 (4f6d45e2): these seven come straight from torch-em paths, without _process_images,
    # so neither empty labels nor an object minimum drop an image; the scorer leaves empty ones out of the mean.
    from apgbench.datasets import get_dataset_config

    prep = get_dataset_config(dataset_id).preparation
    assert not prep.drop_empty and prep.min_objects is None and prep.crop is None
    labels = np.zeros((16, 16), np.uint16)
    image, out, _ = prepare_image(
        labels.astype(np.uint8),
        labels,
        prep if prep.channels != "rgb" else prep.model_copy(update={"channels": "as-is"}),
    )
    assert not out.any() and image.shape == (16, 16)


def test_natural_order_is_natsorts():
    natsort = pytest.importorskip("natsort", reason="natsort (the paper's sort) comes with torch-em")
    from apgbench.datasets.readers._base import natural_key

    names = [
        "B1.tif",
        "a1.tif",
        "a10.tif",
        "a2.tif",
        "a_1_masks.tif",
        "a_masks.tif",
        "A2058/1_img.tif",
        "x01.tif",
        "x1.tif",
        "1a",
        "a",
        "a.tif",
        "a_1.tif",
        "Ab",
        "aB",
        "é1",
        "e2",
        "normal_10",
        "normal_9",
    ]
    assert sorted(names, key=natural_key) == natsort.natsorted(names)


def test_negative_ids_kept_as_objects():
    # PlantSeg ovules' 'label_with_ignore': the paper keeps -1 as one more label value (util.py:624)
    labels = np.array([[-1, -1, 0], [3, 3, 0], [0, 7, -2]])
    out = to_instances(labels, "negative-as-objects")
    assert out.dtype == np.uint32 and out.tolist() == [[8, 8, 0], [3, 3, 0], [0, 7, 9]]
    assert len(np.unique(out)) == len(np.unique(labels))
