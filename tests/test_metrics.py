"""Tests for apgbench.metrics: hand-made cases with known counts, and equality with elf."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from scipy import ndimage as ndi

from apgbench import metrics
from apgbench.metrics import (
    DEFAULT_THRESHOLDS,
    matching,
    mean_segmentation_accuracy,
    score_image,
    segmentation_accuracy,
)

INT_DTYPES = [np.uint8, np.uint16, np.uint32, np.uint64, np.int8, np.int16, np.int32, np.int64]


@pytest.fixture(scope="module")
def elf_msa():
    """elf's functions (the paper's implementation); both take (segmentation, groundtruth)."""
    ev = pytest.importorskip(
        "elf.evaluation",
        reason="python-elf (the reference implementation) is not installed: pip install python-elf",
    )
    return ev


@pytest.fixture(params=["dense", "sparse"])
def table_path(request, monkeypatch):
    """Run a test through both contingency-table code paths."""
    if request.param == "sparse":
        monkeypatch.setattr(metrics, "_DENSE_MAX_CELLS", 0)
    return request.param


def squares(shape=(64, 64), side=10, step=20):
    labels = np.zeros(shape, dtype=np.uint16)
    k = 0
    for r in range(2, shape[0] - side, step):
        for c in range(2, shape[1] - side, step):
            k += 1
            labels[r : r + side, c : c + side] = k
    return labels


def disks(shape=(128, 128), radius=7, step=20):
    rows, cols = np.indices(shape)
    labels = np.zeros(shape, dtype=np.int32)
    k = 0
    for r in range(radius + 2, shape[0] - radius - 2, step):
        for c in range(radius + 2, shape[1] - radius - 2, step):
            k += 1
            labels[(rows - r) ** 2 + (cols - c) ** 2 <= radius**2] = k
    return labels


def assert_elf_equal(ev, true, pred, thresholds=None):
    e_msa, e_acc = ev.mean_segmentation_accuracy(pred, true, thresholds=thresholds, return_accuracies=True)
    np.testing.assert_allclose(
        segmentation_accuracy(true, pred, thresholds=thresholds), e_acc, rtol=0, atol=1e-12
    )
    assert mean_segmentation_accuracy(true, pred, thresholds=thresholds) == pytest.approx(
        e_msa, rel=0, abs=1e-12
    )
    e_match, m = ev.matching(pred, true, threshold=0.5), matching(true, pred, threshold=0.5)
    ours = {"precision": m.precision, "recall": m.recall, "f1": m.f1, "segmentation_accuracy": m.accuracy}
    assert ours == pytest.approx(e_match, rel=0, abs=1e-12)


# ----------------------------------------------------------------- hand-made cases


@pytest.mark.parametrize("shift, iou", [(0, 1.0), (2, 8 / 12), (3, 7 / 13), (4, 6 / 14)])
def test_shifted_squares_exact_counts(shift, iou, table_path):
    true = squares()  # 9 squares of 10x10, 10 pixels apart
    pred = np.roll(true, shift, axis=1)
    n = 9
    for t in (0.3, 0.5, 0.6, 0.7, 1.0):
        m = matching(true, pred, threshold=t)
        tp = n if iou >= t else 0
        assert (m.tp, m.fp, m.fn, m.n_true, m.n_pred) == (tp, n - tp, n - tp, n, n)
        assert m.accuracy == (tp / (2 * n - tp) if tp else 0.0)


@pytest.mark.parametrize("shift", [0, 1, 2, 3, 5, 8])
def test_rolled_disks_against_per_object_iou(shift):
    true = disks()
    pred = np.roll(np.roll(true, shift, axis=0), -shift // 2, axis=1)
    ids = np.unique(true)[1:]
    # Oracle: pred object k is true object k moved; compute each IoU from its own masks.
    ious = np.array([np.sum((true == k) & (pred == k)) / np.sum((true == k) | (pred == k)) for k in ids])
    acc = segmentation_accuracy(true, pred)
    for t, a in zip(DEFAULT_THRESHOLDS, acc):
        tp = int(np.sum(ious >= t))
        assert matching(true, pred, threshold=t).tp == tp
        assert a == (tp / (2 * ids.size - tp) if tp else 0.0)
    assert mean_segmentation_accuracy(true, pred) == pytest.approx(acc.mean())


def test_missing_and_extra_objects():
    true = squares()
    pred = true.copy()
    pred[true == 3] = 0  # one missed
    pred[50:60, 50:54] = 99  # one extra object on background (IoU 0 with everything)
    m = matching(true, pred)
    assert (m.tp, m.fp, m.fn, m.n_true, m.n_pred) == (8, 1, 1, 9, 9)
    assert (m.precision, m.recall, m.f1, m.accuracy) == (8 / 9, 8 / 9, 8 / 9, 0.8)


def test_areas_include_background_overlap():
    true = np.zeros((1, 10), np.uint8)
    true[0, :4] = 1
    pred = np.zeros_like(true)
    pred[0, :8] = 1  # overlaps 4 true pixels and 4 background pixels: IoU 0.5, not 1
    assert matching(true, pred, threshold=0.5).tp == 1
    assert matching(true, pred, threshold=0.51).tp == 0


def tie_pair():
    """Two true objects each split into equal predicted halves (IoU exactly 0.5), plus one match."""
    true = np.zeros((6, 10), np.uint8)
    true[1:5, 1:9] = 1
    pred = np.zeros_like(true)
    pred[1:5, 1:5], pred[1:5, 5:9] = 4, 9
    true2 = np.concatenate([true, true * 2, true * 3], axis=1)
    pred2 = np.concatenate([pred, pred + 10 * (pred > 0), (pred > 0) * 30], axis=1)
    return true, pred, true2, pred2


def test_tie_at_half_is_one_match(table_path):
    true, pred, true2, pred2 = tie_pair()
    m = matching(true, pred, threshold=0.5)
    assert (m.tp, m.fp, m.fn) == (1, 1, 0)
    r = matching(pred, true, threshold=0.5)  # the reverse: two true halves, one prediction
    assert (r.tp, r.fp, r.fn) == (1, 0, 1)
    assert matching(true, pred, threshold=0.55).tp == 0
    m = matching(true2, pred2, threshold=0.5)
    assert (m.tp, m.fp, m.fn, m.n_true, m.n_pred) == (3, 2, 0, 3, 5)
    assert segmentation_accuracy(true2, pred2)[:2].tolist() == [3 / 5, 1 / 7]


def test_low_threshold_needs_optimal_assignment(table_path):
    # At t = 0.3, A-P (0.43), A-Q (0.4), B-P (0.33): greedy by IoU matches only A-P;
    # the maximum matching is A-Q, B-P.
    true = np.zeros((1, 20), np.uint8)
    true[0, 0:10], true[0, 10:16] = 1, 2  # A, B
    pred = np.zeros_like(true)
    pred[0, 0:4], pred[0, 4:14] = 5, 6  # Q, P
    m = matching(true, pred, threshold=0.3)
    assert (m.tp, m.fp, m.fn) == (2, 0, 0)


def test_default_thresholds_are_elfs_arange():
    # np.arange accumulates rounding: an IoU of exactly 3/5 does not pass the "0.6" threshold.
    assert DEFAULT_THRESHOLDS.shape == (10,) and DEFAULT_THRESHOLDS[2] > 0.6
    true = np.zeros((1, 5), np.uint8)
    true[0, :5] = 1
    pred = np.zeros_like(true)
    pred[0, :3] = 1  # IoU 3/5
    assert segmentation_accuracy(true, pred)[1:3].tolist() == [1.0, 0.0]
    assert matching(true, pred, threshold=0.6).tp == 1


def test_empty_images():
    true, empty = squares(), np.zeros((64, 64), np.uint16)
    for a, b in ((true, empty), (empty, true), (empty, empty)):
        assert mean_segmentation_accuracy(a, b) == 0.0
        assert segmentation_accuracy(a, b).tolist() == [0.0] * 10
    m = matching(true, empty)
    assert (m.tp, m.fp, m.fn, m.precision, m.recall, m.f1) == (0, 0, 9, 0.0, 0.0, 0.0)
    s = score_image(empty, true)
    assert (s["msa"], s["n_true"], s["n_pred"], s["tp50"]) == (0.0, 0, 9, 0)


def test_no_background():
    true = squares() + 1  # every pixel belongs to an object
    m = matching(true, np.roll(true, 3, axis=0))
    assert (m.n_true, m.n_pred, m.tp) == (10, 10, 10)


def test_crafted_cases_equal_elf(elf_msa, table_path):
    _, _, true2, pred2 = tie_pair()
    assert_elf_equal(elf_msa, true2, pred2)
    assert_elf_equal(elf_msa, pred2, true2)
    no_background = squares() + 1
    assert_elf_equal(elf_msa, no_background, np.roll(no_background, 3, axis=0))
    vol_true = np.stack([squares(), np.roll(squares(), 1, axis=1) * 3])  # 3-D
    vol_pred = np.stack([np.roll(squares(), 2, axis=0), squares()])
    assert_elf_equal(elf_msa, vol_true, vol_pred)
    empty = np.zeros((64, 64), np.uint16)
    for a, b in ((squares(), empty), (empty, squares()), (empty, empty)):
        assert_elf_equal(elf_msa, a, b)


def test_score_image_is_consistent():
    true, pred = disks(), np.roll(disks(), 2, axis=1)
    s = score_image(true, pred)
    assert list(s) == ["msa", *(f"sa{p}" for p in range(50, 100, 5)), "n_true", "n_pred", "tp50"]
    assert s["msa"] == mean_segmentation_accuracy(true, pred)
    assert [s[f"sa{p}"] for p in range(50, 100, 5)] == segmentation_accuracy(true, pred).tolist()
    m = matching(true, pred)
    assert (s["n_true"], s["n_pred"], s["tp50"]) == (m.n_true, m.n_pred, m.tp)
    custom = score_image(true, pred, thresholds=[0.625, 0.9])
    assert list(custom)[:3] == ["msa", "sa62.5", "sa90"] and custom["tp50"] == m.tp


# ----------------------------------------------------------------- dtypes and ids


@pytest.mark.parametrize("dtype_true", INT_DTYPES)
@pytest.mark.parametrize("dtype_pred", [np.uint8, np.int64, np.uint64])
def test_integer_dtypes(dtype_true, dtype_pred):
    true, pred = squares(), np.roll(squares(), 3, axis=1)
    expected = score_image(true, pred)
    assert score_image(true.astype(dtype_true), pred.astype(dtype_pred)) == expected


def test_non_consecutive_and_huge_ids(table_path):
    true, pred = disks(), np.roll(disks(), 3, axis=0)
    expected = score_image(true, pred)
    rng = np.random.default_rng(0)
    lut = np.zeros(true.max() + 1, np.uint64)
    lut[1:] = rng.choice(2**62, true.max(), replace=False) + 2**62
    lut[-1] = np.iinfo(np.uint64).max
    assert score_image(lut[true], lut[pred]) == expected
    assert score_image(true * 1000 + 7 * (true > 0), pred.astype(np.uint64) << np.uint64(40)) == expected


# ----------------------------------------------------------------- errors


def test_errors():
    a = squares()
    with pytest.raises(ValueError, match="same shape"):
        matching(a, a[:-1])
    with pytest.raises(TypeError, match="integer dtype"):
        mean_segmentation_accuracy(a.astype(float), a)
    with pytest.raises(TypeError, match="integer dtype"):
        score_image(a, a > 0)
    with pytest.raises(ValueError, match="negative"):
        segmentation_accuracy(a, a.astype(np.int16) - 1)
    with pytest.raises(ValueError, match="at least one dimension"):
        matching(np.array(1), np.array(1))
    for bad in ([], [0.0, 0.5], [0.5, 1.5], [[0.5]]):
        with pytest.raises(ValueError, match="thresholds"):
            segmentation_accuracy(a, a, thresholds=bad)
    with pytest.raises(ValueError, match="duplicate"):
        score_image(a, a, thresholds=[0.5, 0.5])
    with pytest.raises(TypeError):
        matching(a, a, 0.5)  # options are keyword-only


def test_docstring_examples():
    assert doctest.testmod(metrics, optionflags=doctest.NORMALIZE_WHITESPACE).failed == 0


# ----------------------------------------------------------------- equality with elf


def test_random_small_pairs_equal_elf(elf_msa, table_path):
    """Small random and striped images, many with exact IoU ties, at low and default thresholds."""
    rng = np.random.default_rng(42)
    thresholds = rng.permutation(np.linspace(0.05, 1.0, 20))  # any order
    for it in range(150):
        h, w = rng.integers(1, 10, size=2)
        k = rng.integers(1, 7)
        true, pred = rng.integers(0, k, (h, w)), rng.integers(0, k, (h, w))
        if it % 3 == 0:
            true = np.repeat(true[:, :1], w, axis=1)  # stripes give exact halves
        if it % 4 == 0:
            pred = np.repeat(pred[:1, :], h, axis=0)
        assert_elf_equal(elf_msa, true, pred)
        assert_elf_equal(elf_msa, true, pred, thresholds=thresholds)


def _variants(y):
    rng = np.random.default_rng(int(y.max()))
    yield "roll3", np.roll(y, 3, axis=0)
    yield "eroded", np.where(ndi.grey_erosion(y, size=3) != ndi.grey_dilation(y, size=3), 0, y)
    lut = np.arange(int(y.max()) + 1, dtype=np.uint64) * np.uint64(2**40 + 17)
    yield "relabel-u64", lut[np.roll(y, 2, axis=1)]
    merge = np.arange(int(y.max()) + 1)
    merge[2::2] = merge[1:-1:2][: merge[2::2].size]
    yield "merged", merge[y]
    lower = np.indices(y.shape)[0] > y.shape[0] // 2
    yield "split", y.astype(np.int64) * 2 + (lower & (y > 0))
    yield "random", rng.integers(0, 40, y.shape, dtype=np.uint16)
    yield "empty", np.zeros_like(y)


def test_real_labels_equal_elf(shared_data, elf_msa):
    import tifffile

    paths = sorted(shared_data.glob("*/*/*_label.tif"))
    assert paths
    for path in paths:
        y = tifffile.imread(path)
        assert_elf_equal(elf_msa, y, y)
        for name, variant in _variants(y):
            assert_elf_equal(elf_msa, y, variant)
            if name in ("merged", "split"):
                assert_elf_equal(elf_msa, variant, y)
