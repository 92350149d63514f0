import numpy as np
import pytest

from apgbench.apg import PromptMasks, mask_nms, ranking_scores
from apgbench.apg import paint_prompt_masks as paint_masks
from apgbench.apg import prompt_masks_to_labels as masks_to_labels
from apgbench.apg.masks import tight_box


def _disk(shape, center, radius):
    rows, cols = np.indices(shape)
    return (rows - center[0]) ** 2 + (cols - center[1]) ** 2 <= radius**2


def test_prompt_masks_roundtrip_and_areas():
    a, b = _disk((40, 50), (10, 10), 5), np.zeros((40, 50), bool)
    masks = PromptMasks.from_masks([a, b], [0.9, 0.1])
    assert masks.areas.tolist() == [a.sum(), 0]
    assert tuple(masks.boxes[0]) == tight_box(a) == (5, 5, 16, 16)
    np.testing.assert_array_equal(masks.full_mask(0), a)
    assert not masks.full_mask(1).any()
    assert len(PromptMasks.concatenate([masks, PromptMasks.empty((40, 50)), masks], (40, 50))) == 4


def test_nms_suppresses_duplicates_by_score_and_keeps_distinct():
    a = _disk((60, 60), (20, 20), 8)
    a_shifted = a.copy()
    a_shifted[20, 28:31] = True  # IoU 201 / 203 with a
    c = _disk((60, 60), (45, 45), 8)
    masks = PromptMasks.from_masks([a, a_shifted, c], [0.5, 0.9, 0.7])
    keep = mask_nms(masks, masks.iou_predictions, threshold=0.9)
    assert keep.tolist() == [1, 2]  # best first, its duplicate suppressed
    assert mask_nms(masks, masks.iou_predictions, threshold=0.995).tolist() == [1, 2, 0]


def test_nms_threshold_is_strict_like_micro_sam():
    a = np.zeros((10, 10), bool)
    a[0, :10] = True
    b = a.copy()
    b[1, 0] = True  # IoU = 10 / 11 > 0.9 ; with threshold 10/11 kept
    masks = PromptMasks.from_masks([a, b], [0.9, 0.8])
    assert mask_nms(masks, masks.iou_predictions, 0.9).tolist() == [0]
    assert mask_nms(masks, masks.iou_predictions, 10 / 11).tolist() == [0, 1]


def test_iomin_measure():
    big, small = _disk((50, 50), (25, 25), 15), _disk((50, 50), (25, 25), 5)
    masks = PromptMasks.from_masks([big, small], [0.9, 0.8])
    assert mask_nms(masks, masks.iou_predictions, 0.9, "iou").tolist() == [0, 1]
    assert mask_nms(masks, masks.iou_predictions, 0.9, "iomin").tolist() == [0]


def test_ranking_scores():
    masks = PromptMasks((4, 4), np.zeros((2, 4)), [np.zeros((0, 0), bool)] * 2, [0.5, 0.8], [1.0, 0.5])
    np.testing.assert_allclose(ranking_scores(masks), [0.5, 0.4])
    np.testing.assert_allclose(ranking_scores(masks, "iou"), [0.5, 0.8])
    with pytest.raises(ValueError, match="ranking"):
        ranking_scores(masks, "area")


def test_ranking_spelling_needs_no_quotes_and_the_old_one_is_deprecated():
    from apgbench.apg import APG_DEFAULTS

    masks = PromptMasks((4, 4), np.zeros((2, 4)), [np.zeros((0, 0), bool)] * 2, [0.5, 0.8], [1.0, 0.5])
    assert APG_DEFAULTS["ranking"] == "iou-x-stability"  # the spelling the README documents
    np.testing.assert_allclose(ranking_scores(masks, "iou-x-stability"), [0.5, 0.4])
    with pytest.warns(DeprecationWarning, match="write 'iou-x-stability'"):
        np.testing.assert_allclose(ranking_scores(masks, "iou*stability"), [0.5, 0.4])


def test_paint_order_area_vs_score():
    big, small = _disk((50, 50), (25, 25), 12), _disk((50, 50), (25, 30), 6)
    masks = PromptMasks.from_masks([small, big], [0.9, 0.5])
    by_area = paint_masks(masks, np.array([0, 1]), min_size=0)
    assert by_area.max() == 1  # the big mask claims the overlap: small is hidden entirely
    by_score = paint_masks(masks, np.array([0, 1]), min_size=5, paint_order="score")
    assert by_score.max() == 2 and by_score[25, 30] != by_score[25, 15]
    assert by_score.dtype == np.uint32


def test_paint_splits_pieces_and_filters_small_pieces():
    mask = np.zeros((30, 30), bool)
    mask[2:12, 2:12] = True  # 100 px
    mask[20:24, 20:24] = True  # 16 px, a separate piece
    masks = PromptMasks.from_masks([mask], [1.0])
    assert paint_masks(masks, np.array([0]), min_size=25).max() == 1
    assert paint_masks(masks, np.array([0]), min_size=0).max() == 2
    kept = paint_masks(masks, np.array([0]), min_size=25, split_components=False)
    assert kept.max() == 1 and kept[21, 21] == 1


def test_masks_to_labels_size_filter_is_strict():
    a = np.zeros((20, 20), bool)
    a[:5, :5] = True  # 25 px: dropped (micro-sam keeps area > min_size)
    b = np.zeros((20, 20), bool)
    b[10:16, 10:16] = True
    labels = masks_to_labels(PromptMasks.from_masks([a, b], [1.0, 1.0]), min_size=25)
    assert labels.max() == 1 and labels[12, 12] == 1 and labels[0, 0] == 0
    assert masks_to_labels(PromptMasks.empty((5, 5))).shape == (5, 5)


def test_split_is_8_connected_by_default_like_the_paper():
    """Paper (util.py:1561 at 4f6d45e2): skimage's label, i.e. connectivity 2; 1 is micro-sam >= 1.6.3."""
    mask = np.zeros((30, 30), bool)
    mask[2:10, 2:10] = True
    mask[10:18, 10:18] = True  # touches the first square at one corner only
    masks = PromptMasks.from_masks([mask], [1.0])
    assert paint_masks(masks, np.array([0]), min_size=0).max() == 1
    assert paint_masks(masks, np.array([0]), min_size=0, connectivity=1).max() == 2
    assert masks_to_labels(masks, min_size=0).max() == 1
