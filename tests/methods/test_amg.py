"""The AMG code shared by ``amg`` and ``sam2-amg`` (methods/amg.py): generator keywords, conversion, info."""

from __future__ import annotations

import numpy as np

from apgbench.methods.amg import LABEL_DEFAULTS, amg_records_to_labels
from apgbench.methods.sam import SamAMG
from apgbench.methods.sam2 import Sam2AMG


class _Records:
    """Stands in for a library generator: returns fixed records for any image."""

    def __init__(self, records):
        self.records, self.images = records, []

    def generate(self, image):
        self.images.append(image)
        return self.records


def _disk_records(shape):
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    big = (rows - 10) ** 2 + (cols - 10) ** 2 < 49
    small = (rows - 12) ** 2 + (cols - 12) ** 2 < 4
    far = (rows - 25) ** 2 + (cols - 25) ** 2 < 9
    return [{"segmentation": m, "area": int(m.sum())} for m in (small, far, big)]


def test_both_generators_get_their_keywords_and_binary_masks():
    sam, sam2 = SamAMG(points_per_side=16)._generator_kwargs(), Sam2AMG()._generator_kwargs()
    assert (
        sam["points_per_side"] == 16
        and sam["min_mask_region_area"] == 0
        and sam["output_mode"] == "binary_mask"
    )
    assert "min_mask_region_area" not in sam2 and sam2["pred_iou_thresh"] == 0.8
    assert not set(LABEL_DEFAULTS) & (set(sam) | set(sam2))  # the conversion's parameters stay with apgbench


def test_shared_segment_converts_the_records_as_the_paper():
    shape = (32, 32)
    image = np.random.default_rng(0).uniform(0, 1000, shape).astype(np.float32)
    for cls in (SamAMG, Sam2AMG):
        method = cls(drop_largest=False)
        method._generator = _Records(_disk_records(shape))
        labels = method._segment(image)
        expected = amg_records_to_labels(_disk_records(shape), shape, drop_largest=False)
        np.testing.assert_array_equal(labels, expected)
        assert len(np.unique(labels)) == 4  # big painted first, small on top of it, the far disk
        image_seen = method._generator.images[0]
        assert image_seen.dtype == np.uint8 and image_seen.shape == (*shape, 3)


def test_info_before_loading_names_no_weights():
    info = SamAMG(random_weights=True).info()
    assert info["weights"] == "random (testing only)" and info["weights_sha256"] is None
    assert info["model"] == "sam_vit_b" and Sam2AMG().info()["model"] == "sam2.1_hiera_b+"
