"""``amg``: AMG records -> labels on crafted outputs; the real segment-anything path with random weights."""

from __future__ import annotations

import numpy as np
import pytest

from apgbench.methods import get_method
from apgbench.methods.amg import amg_records_to_labels
from apgbench.methods.base import MethodUnavailableError
from apgbench.methods.images import to_rgb_uint8
from apgbench.methods.sam import SamAMG
from apgbench.methods.weights import SAM_DISTRIBUTIONS, dist_version, owning_distribution

from ._helpers import LIBRARY_WARNINGS, assert_valid_labels, fake_distribution, pixel_masks, real_crop, spy_on

pytestmark = [pytest.mark.filterwarnings(w) for w in LIBRARY_WARNINGS]


def _record(mask, with_meta=True):
    record = {"segmentation": mask}
    if with_meta:
        rows, cols = np.nonzero(mask)
        record["area"] = int(mask.sum())
        record["bbox"] = [
            int(cols.min()),
            int(rows.min()),
            int(cols.max() - cols.min()),
            int(rows.max() - rows.min()),
        ]
    return record


@pytest.mark.parametrize("with_meta", [True, False])
def test_smaller_masks_win_overlaps(with_meta):
    big = np.zeros((20, 20), bool)
    big[2:12, 2:12] = True
    small = np.zeros((20, 20), bool)
    small[8:14, 8:14] = True
    labels = amg_records_to_labels([_record(small, with_meta), _record(big, with_meta)], (20, 20))
    assert labels.dtype == np.uint32
    assert labels[10, 10] == labels[13, 13] != 0  # the small mask is painted over the big one
    assert labels[3, 3] not in (0, labels[10, 10])
    assert set(np.unique(labels)) == {0, 1, 2}
    assert (labels == labels[13, 13]).sum() == small.sum()


def test_background_mask_dropped_and_empty_output():
    background = np.ones((10, 10), bool)
    background[0, 0] = False
    obj = np.zeros((10, 10), bool)
    obj[0, 0] = True
    labels = amg_records_to_labels([_record(background), _record(obj)], (10, 10))
    assert labels[0, 0] == 1 and labels.sum() == 1
    assert not amg_records_to_labels([], (10, 10)).any()
    kept = amg_records_to_labels([_record(background)], (10, 10), drop_largest=False)
    assert kept.max() == 1


def test_paper_conversion_drops_the_largest_segment_and_splits_8_connected():
    """micro-sam 4f6d45e2 mask_data_to_segmentation(with_background=True), instance_segmentation.py:50-117."""
    big = np.zeros((20, 20), bool)
    big[0:9] = True  # 45% of the image, below the old 50% rule, but larger than the background: removed
    band = np.zeros((20, 20), bool)
    band[9:13] = True
    small = np.zeros((20, 20), bool)
    small[14:17, 12:15] = True
    diagonal = np.zeros((20, 20), bool)
    diagonal[16:18, 0:2] = diagonal[18:20, 2:4] = True  # squares touching at a corner: one 8-connected piece
    apart = np.zeros((20, 20), bool)
    apart[14:16, 17:19] = apart[18:20, 17:19] = True  # two separate pieces: two objects
    records = [_record(m) for m in (small, big, band, diagonal, apart)]
    labels = amg_records_to_labels(records, (20, 20))
    assert labels[5, 5] == 0 and labels[10, 10] != 0 and labels.max() == 5
    assert labels[16, 0] == labels[19, 3] != 0 and labels[14, 17] != labels[18, 17]
    old = amg_records_to_labels(
        records, (20, 20), split_pieces=False, drop_largest=False, max_area_fraction=0.5
    )
    assert old[5, 5] != 0 and old.max() == 5
    # When the background is the largest segment, nothing else is removed.
    full = np.ones((20, 20), bool)
    full[:12] = False  # 160 px < the 240 px of background
    assert amg_records_to_labels([_record(full)], (20, 20)).max() == 1


def test_mask_of_wrong_shape_is_an_error():
    with pytest.raises(ValueError, match="does not match"):
        amg_records_to_labels([{"segmentation": np.ones((3, 3), bool)}], (4, 4))


def test_more_than_65535_objects():
    shape = (260, 260)
    count = 66_000
    records = [
        {"segmentation": mask, "area": 1, "bbox": [k % shape[1], k // shape[1], 0, 0]}
        for k, mask in enumerate(pixel_masks(shape, count))
    ]
    labels = amg_records_to_labels(records, shape)
    assert labels.dtype == np.uint32 and labels.max() == count
    assert np.count_nonzero(labels) == count and len(np.unique(labels)) == count + 1


def test_registered_and_unknown_parameter():
    assert get_method("amg") is SamAMG
    with pytest.raises(ValueError, match="no parameter"):
        SamAMG(prompt="cell")


def test_owner_is_the_distribution_whose_record_matches_the_file(tmp_path, monkeypatch):
    """Two distributions writing one package (segment-anything and its -py fork): the file on disk decides."""
    site = tmp_path / "site"
    (site / "fakepkg").mkdir(parents=True)
    fake_distribution(site, "fake-upstream", "1.0", "fakepkg", "predictor.py", b"upstream")
    fake_distribution(site, "fake-fork", "1.0.2", "fakepkg", "predictor.py", b"fork")
    monkeypatch.syspath_prepend(str(site))
    candidates = ("fake-upstream", "fake-fork")
    probe = site / "fakepkg" / "predictor.py"
    probe.write_bytes(b"fork")
    assert owning_distribution("fakepkg", "predictor.py", candidates) == "fake-fork==1.0.2"
    probe.write_bytes(b"upstream")
    assert owning_distribution("fakepkg", "predictor.py", candidates) == "fake-upstream==1.0"
    probe.write_bytes(b"edited by hand")
    assert owning_distribution("fakepkg", "predictor.py", candidates) is None


def test_segment_anything_install_is_deterministic():
    pytest.importorskip("segment_anything", reason="segment-anything is not installed")
    if not (dist_version("segment-anything") and dist_version("segment-anything-py")):
        pytest.skip("only one segment-anything distribution is installed: nothing can overwrite the other")
    # Both distributions write segment_anything/: the install reinstalls the -py fork last.
    assert owning_distribution("segment_anything", "predictor.py", SAM_DISTRIBUTIONS).startswith(
        "segment-anything-py=="
    )


def test_missing_checkpoint_is_one_clear_error(tmp_path):
    pytest.importorskip("segment_anything", reason="segment-anything is not installed")
    method = SamAMG(checkpoint=str(tmp_path / "sam_vit_b.pth"))
    with pytest.raises(MethodUnavailableError, match="does not exist"):
        method.prepare("cpu")


def test_weights_status_reports_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("APGBENCH_WEIGHTS_DIR", str(tmp_path))
    ok, message = SamAMG.meta.weights_status()
    assert ok and "not cached" in message and "sam_vit_b_01ec64.pth" in message
    (tmp_path / "segment_anything").mkdir()
    (tmp_path / "segment_anything" / "sam_vit_b_01ec64.pth").write_bytes(b"")
    assert "not cached" not in SamAMG.meta.weights_status()[1]


@pytest.mark.heavy
def test_amg_random_weights_real_library(monkeypatch):
    """The real generator gets the paper's uint8 RGB input and settings; its records become the paper's labels."""
    pytest.importorskip("segment_anything", reason="segment-anything is not installed")
    pytest.importorskip("micro_sam", reason="needs the musam extra (the paper's conversion is the oracle)")
    from segment_anything import SamAutomaticMaskGenerator

    from .test_amg_paper import paper_mask_data_to_segmentation

    calls = spy_on(monkeypatch, SamAutomaticMaskGenerator, "generate")
    image = real_crop(256)
    # Few prompts, no quality filter and no box NMS keep CPU time low and let many random masks (large,
    # overlapping) reach the painting, where the order decides which mask owns a pixel.
    params = {
        "points_per_side": 4,
        "pred_iou_thresh": 0.0,
        "stability_score_thresh": 0.0,
        "box_nms_thresh": 1.0,
    }
    with SamAMG(random_weights=True, **params) as method:
        method.prepare("cpu")
        labels = method.segment(image)
        info = method.info()
    assert_valid_labels(labels, image.shape)
    ((generator, (rgb,), _, records),) = calls
    np.testing.assert_array_equal(rgb, to_rgb_uint8(image))
    assert (generator.pred_iou_thresh, generator.stability_score_thresh, generator.box_nms_thresh) == (
        0,
        0,
        1,
    )
    assert generator.min_mask_region_area == 0  # the paper ran no small-region removal
    assert len(records) > 1
    np.testing.assert_array_equal(labels, paper_mask_data_to_segmentation(records))
    assert info["model"] == "sam_vit_b" and info["library"].startswith("segment")
    assert info["weights"].startswith("random")
