"""Instance segmentation metrics: matching and mean segmentation accuracy (mSA).

The definitions follow Archit & Pape, App. A, and give exactly the values of
``elf.evaluation.mean_segmentation_accuracy`` (PyPI ``python-elf``, the paper's
implementation), which ``tests/test_metrics.py`` checks on real and synthetic label
pairs. For each IoU threshold ``t``::

    TP(t) = size of a maximum matching between true and predicted objects,
            using only pairs with IoU >= t
    FP(t) = n_pred - TP(t),   FN(t) = n_true - TP(t)
    SA(t) = TP / (TP + FP + FN)   (0 when TP == 0)
    mSA   = mean of SA(t) over the thresholds

Label 0 is background. It is not an object, but pixels of an object that lie on the
other image's background still count towards that object's area (so the union).

Label images may have any shape (2-D, 3-D, ...), any integer dtype and any
non-negative ids (not necessarily consecutive, up to the uint64 maximum). The
contingency table takes one pass over the two images: a ``bincount`` of the joint key
``true * (max_pred + 1) + pred`` when the ids are small enough for a dense table, else a
sparse table built from the runs of equal (true, pred) pixels. Everything after that
works on the few pairs of objects that overlap at all. For ``t > 0.5`` a pair with IoU >= t is the only
candidate of both its objects, so TP is a count. Only at ``t <= 0.5`` can an object have
two candidates (exactly IoU = 0.5 when it is split into two equal halves); such
conflicting pairs are resolved by an optimal assignment
(:func:`scipy.optimize.linear_sum_assignment`), as elf does on the full matrix.

This module imports no other apgbench module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = [
    "DEFAULT_THRESHOLDS",
    "SCORE_KEYS",
    "Matching",
    "matching",
    "mean_segmentation_accuracy",
    "score_image",
    "segmentation_accuracy",
    "threshold_key",
]

#: IoU thresholds of the paper, built exactly as elf builds them. Note that
#: ``np.arange`` accumulates rounding: the values are 0.5, 0.55, 0.6000000000000001, ...,
#: 0.9500000000000004, so e.g. a pair with IoU exactly 3/5 does *not* pass "0.6".
DEFAULT_THRESHOLDS = np.arange(0.5, 1.0, 0.05)
DEFAULT_THRESHOLDS.flags.writeable = False

# Bounds on the dense contingency table ((max true id + 1) x (max pred id + 1) cells),
# which is used up to the image's size in cells; larger ids go to the sparse table.
_DENSE_MIN_CELLS = 1 << 16
_DENSE_MAX_CELLS = 1 << 22


@dataclass(frozen=True, slots=True)
class Matching:
    """Result of :func:`matching` at one IoU threshold.

    Attributes
    ----------
    threshold : float
        The IoU threshold.
    tp, fp, fn : int
        Matched pairs, unmatched predicted objects, unmatched true objects.
    n_true, n_pred : int
        Number of objects (distinct non-zero labels) in each label image.
    precision, recall, f1, accuracy : float
        ``tp/(tp+fp)``, ``tp/(tp+fn)``, ``2tp/(2tp+fp+fn)``, ``tp/(tp+fp+fn)``;
        each is 0.0 when ``tp == 0`` (as in elf), so never NaN.
    """

    threshold: float
    tp: int
    fp: int
    fn: int
    n_true: int
    n_pred: int
    precision: float
    recall: float
    f1: float
    accuracy: float


def matching(label_true, label_pred, *, threshold=0.5):
    """Match true and predicted objects at one IoU threshold.

    Parameters
    ----------
    label_true : (...) array of int
        Ground-truth label image; 0 is background, each other value one object.
        Ids need not be consecutive. Any integer dtype; negative values are an error.
    label_pred : (...) array of int
        Predicted label image with the same shape and conventions.
    threshold : float, optional
        A pair of objects matches if their IoU is >= `threshold`; must be in (0, 1].

    Returns
    -------
    Matching
        Counts (tp, fp, fn, n_true, n_pred) and the derived scores.

    Raises
    ------
    TypeError
        If a label image does not have an integer dtype (bool included).
    ValueError
        If the shapes differ, a label image is 0-d or has negative labels, or the
        threshold is outside (0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> true = np.zeros((4, 8), dtype=np.uint16)
    >>> true[:, :4] = 1                                 # two objects of 16 pixels
    >>> true[:, 4:] = 2
    >>> pred = np.zeros((4, 8), dtype=np.int32)
    >>> pred[:, 1:4] = 7                                 # IoU 12/16 with object 1
    >>> pred[0, 4:] = 9                                  # IoU 4/16 with object 2
    >>> m = matching(true, pred, threshold=0.5)
    >>> m.tp, m.fp, m.fn, m.n_true, m.n_pred
    (1, 1, 1, 2, 2)
    >>> m.accuracy
    0.3333333333333333
    """
    thr = _check_thresholds([threshold])
    pairs = _overlap_pairs(label_true, label_pred)
    tp = int(_true_positives(pairs, thr)[0])
    n_true, n_pred = pairs[3], pairs[4]
    fp, fn = n_pred - tp, n_true - tp
    ok = tp > 0
    return Matching(
        threshold=float(thr[0]),
        tp=tp,
        fp=fp,
        fn=fn,
        n_true=n_true,
        n_pred=n_pred,
        precision=tp / (tp + fp) if ok else 0.0,
        recall=tp / (tp + fn) if ok else 0.0,
        f1=2 * tp / (2 * tp + fp + fn) if ok else 0.0,
        accuracy=tp / (tp + fp + fn) if ok else 0.0,
    )


def segmentation_accuracy(label_true, label_pred, *, thresholds=None):
    """Segmentation accuracy ``TP / (TP + FP + FN)`` at each IoU threshold.

    Parameters
    ----------
    label_true, label_pred : (...) array of int
        Ground-truth and predicted label images, as in :func:`matching`.
    thresholds : sequence of float, optional
        IoU thresholds in (0, 1]. Default :data:`DEFAULT_THRESHOLDS`
        (``np.arange(0.5, 1.0, 0.05)``, 10 values, as in elf and the paper).

    Returns
    -------
    accuracies : (n_thresholds,) ndarray of float64
        One value per threshold, in the given order; 0.0 where TP is 0. In particular
        all values are 0.0 when the ground truth is empty, whatever the prediction
        (elf's behaviour; the benchmark excludes such images from its means).

    Raises
    ------
    TypeError, ValueError
        As for :func:`matching`; also ValueError for an empty `thresholds`.

    Examples
    --------
    >>> import numpy as np
    >>> true = np.zeros((10, 10), dtype=np.uint8)
    >>> true[:, :5] = 1                                  # 50 pixels
    >>> pred = np.zeros_like(true)
    >>> pred[:, :4] = 1                                  # IoU 40/50 = 0.8
    >>> segmentation_accuracy(true, pred, thresholds=[0.5, 0.8, 0.9])
    array([1., 1., 0.])
    """
    thr = _check_thresholds(thresholds)
    pairs = _overlap_pairs(label_true, label_pred)
    return _accuracies(pairs, _true_positives(pairs, thr))


def mean_segmentation_accuracy(label_true, label_pred, *, thresholds=None):
    """Mean segmentation accuracy (mSA), the paper's metric.

    The mean over `thresholds` of :func:`segmentation_accuracy`. Equals elf's
    ``mean_segmentation_accuracy(label_pred, label_true)`` (note elf's argument order:
    prediction first).

    Parameters
    ----------
    label_true, label_pred : (...) array of int
        Ground-truth and predicted label images, as in :func:`matching`.
    thresholds : sequence of float, optional
        IoU thresholds in (0, 1]; default :data:`DEFAULT_THRESHOLDS`.

    Returns
    -------
    float
        mSA in [0, 1]. It is 0.0 when the ground truth is empty, also when the
        prediction is empty too (elf's behaviour): callers that average over images
        should exclude images without ground-truth objects.

    Raises
    ------
    TypeError, ValueError
        As for :func:`segmentation_accuracy`.

    Examples
    --------
    >>> import numpy as np
    >>> true = np.zeros((10, 10), dtype=np.uint8)
    >>> true[:, :5] = 1                                  # 50 pixels
    >>> pred = np.zeros_like(true)
    >>> pred[:, :4] = 1                                  # IoU 0.8: passes 0.5 ... 0.75
    >>> round(mean_segmentation_accuracy(true, pred), 6)
    0.6
    >>> mean_segmentation_accuracy(true, np.zeros_like(true))
    0.0
    """
    return float(np.mean(segmentation_accuracy(label_true, label_pred, thresholds=thresholds)))


def threshold_key(threshold):
    """Name of the score column for an IoU threshold: ``0.5 -> "sa50"``, ``0.625 -> "sa62.5"``.

    Parameters
    ----------
    threshold : float
        IoU threshold in (0, 1].

    Returns
    -------
    str
        ``"sa"`` followed by the threshold in percent, without trailing zeros.
    """
    return "sa" + f"{round(float(threshold) * 100, 6):g}"


def score_image(label_true, label_pred, *, thresholds=None):
    """Everything the benchmark records for one image, from one contingency table.

    Parameters
    ----------
    label_true, label_pred : (...) array of int
        Ground-truth and predicted label images, as in :func:`matching`.
    thresholds : sequence of float, optional
        IoU thresholds in (0, 1]; default :data:`DEFAULT_THRESHOLDS`. Their column
        names (:func:`threshold_key`) must be distinct.

    Returns
    -------
    dict
        ``msa`` (float), one ``sa<percent>`` float per threshold (``sa50``, ``sa55``,
        ..., ``sa95`` by default), ``n_true`` and ``n_pred`` (int), and ``tp50``, the
        number of true positives at IoU 0.5 (int; computed even if 0.5 is not among
        `thresholds`). ``n_true == 0`` marks an image whose scores are all 0.0 by
        convention and which should be excluded from means.

    Raises
    ------
    TypeError, ValueError
        As for :func:`segmentation_accuracy`; ValueError also for thresholds whose
        column names collide.

    Examples
    --------
    >>> import numpy as np
    >>> true = np.zeros((10, 10), dtype=np.uint8)
    >>> true[:, :5] = 1
    >>> pred = np.zeros_like(true)
    >>> pred[:, :4] = 2
    >>> s = score_image(true, pred)                     # IoU 0.8 < 0.8000000000000003
    >>> sorted(s)[:4], s["sa75"], s["sa80"], s["n_true"], s["tp50"]
    (['msa', 'n_pred', 'n_true', 'sa50'], 1.0, 0.0, 1, 1)
    """
    thr = _check_thresholds(thresholds)
    keys = _DEFAULT_KEYS if thresholds is None else [threshold_key(t) for t in thr]
    if len(set(keys)) != len(keys):
        raise ValueError(f"thresholds give duplicate column names: {keys}")
    pairs = _overlap_pairs(label_true, label_pred)
    tps = _true_positives(pairs, np.append(thr, 0.5))
    acc = _accuracies(pairs, tps[:-1])
    scores = {"msa": float(np.mean(acc))}
    scores.update(zip(keys, acc.tolist()))
    scores.update(n_true=pairs[3], n_pred=pairs[4], tp50=int(tps[-1]))
    return scores


# --------------------------------------------------------------------------- internals

_DEFAULT_KEYS = [threshold_key(t) for t in DEFAULT_THRESHOLDS]

#: The keys :func:`score_image` returns with the default thresholds, in order: the columns a results
#: store keeps per image.
SCORE_KEYS = ("msa", *_DEFAULT_KEYS, "n_true", "n_pred", "tp50")


def _check_thresholds(thresholds):
    if thresholds is None:
        return DEFAULT_THRESHOLDS
    thr = np.asarray(thresholds, dtype=np.float64)
    if thr.ndim != 1 or thr.size == 0:
        raise ValueError(f"thresholds must be a non-empty 1-d sequence, got {thresholds!r}")
    # t <= 0 would make non-overlapping pairs match, which the sparse table cannot see.
    if not np.all((thr > 0) & (thr <= 1)):
        raise ValueError(f"IoU thresholds must lie in (0, 1], got {thresholds!r}")
    return thr


def _check_labels(label_true, label_pred):
    true, pred = np.asarray(label_true), np.asarray(label_pred)
    for name, arr in (("label_true", true), ("label_pred", pred)):
        if not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"{name} must have an integer dtype, got {arr.dtype}")
        if arr.ndim == 0:
            raise ValueError(f"{name} must have at least one dimension")
    if true.shape != pred.shape:
        raise ValueError(
            f"label_true and label_pred must have the same shape, got {true.shape} and {pred.shape}"
        )
    return true.ravel(), pred.ravel()


def _max_id(flat, name):
    if flat.size == 0:
        return 0
    if np.issubdtype(flat.dtype, np.signedinteger) and flat.min() < 0:
        raise ValueError(f"{name} must not contain negative labels")
    return int(flat.max())


def _dense_table(true, pred, n_t, n_p):
    """Contingency table by ``bincount`` of the joint key ``true * n_p + pred``."""
    cells = n_t * n_p
    kdt = np.uint16 if cells <= np.iinfo(np.uint16).max else np.uint32
    key = true.astype(kdt)
    np.multiply(key, n_p, out=key, casting="unsafe")
    np.add(key, pred, out=key, casting="unsafe")
    table = np.bincount(key, minlength=cells).reshape(n_t, n_p)
    rows, cols = np.nonzero(table[1:, 1:])
    rows += 1
    cols += 1
    return table.sum(axis=1), table.sum(axis=0), rows, cols, table[rows, cols]


def _compact_ids(values):
    """Indices of `values` among their sorted distinct values, with index 0 kept for label 0."""
    ids = np.unique(values)  # np.unique + searchsorted is much faster than return_inverse
    idx = np.searchsorted(ids, values)
    if ids[0] != 0:
        idx += 1
        return idx, ids.size + 1
    return idx, ids.size


def _run_table(true, pred):
    """Sparse contingency table for large ids, built on runs of equal (true, pred) pixels.

    Label images are piecewise constant, so the runs are far fewer than the pixels and
    the sorting needed for arbitrary (e.g. uint64) ids only sees the runs.
    """
    n = true.size
    change = np.empty(n, dtype=bool)
    change[0] = True
    np.not_equal(true[1:], true[:-1], out=change[1:])
    change[1:] |= pred[1:] != pred[:-1]
    starts = np.flatnonzero(change)
    lengths = np.diff(starts, append=n)
    ti, n_t = _compact_ids(true[starts])
    pj, n_p = _compact_ids(pred[starts])
    key = ti.astype(np.int64) * n_p + pj
    keys = np.unique(key)
    inter = np.bincount(np.searchsorted(keys, key), weights=lengths).astype(np.int64)
    rows, cols = np.divmod(keys, n_p)
    area_t = np.bincount(ti, weights=lengths, minlength=n_t).astype(np.int64)
    area_p = np.bincount(pj, weights=lengths, minlength=n_p).astype(np.int64)
    keep = (rows > 0) & (cols > 0)
    return area_t, area_p, rows[keep], cols[keep], inter[keep]


def _overlap_pairs(label_true, label_pred):
    """Overlapping object pairs and object counts.

    Returns ``(rows, cols, iou, n_true, n_pred)``: for every pair of non-background
    objects sharing at least one pixel, their (row/column) indices and IoU.
    """
    true, pred = _check_labels(label_true, label_pred)
    n_t = _max_id(true, "label_true") + 1
    n_p = _max_id(pred, "label_pred") + 1
    if true.size == 0:
        return np.zeros(0, np.intp), np.zeros(0, np.intp), np.zeros(0), 0, 0
    # A dense table costs about as much as the image; beyond that, go sparse.
    if n_t * n_p <= min(max(true.size, _DENSE_MIN_CELLS), _DENSE_MAX_CELLS):
        area_t, area_p, rows, cols, inter = _dense_table(true, pred, n_t, n_p)
    else:
        area_t, area_p, rows, cols, inter = _run_table(true, pred)
    n_true = int(np.count_nonzero(area_t[1:]))
    n_pred = int(np.count_nonzero(area_p[1:]))
    inter = inter.astype(np.int64)
    # Same float64 division as elf, so IoU values compare identically with thresholds.
    iou = inter / (area_t[rows].astype(np.int64) + area_p[cols] - inter)
    return rows, cols, iou, n_true, n_pred


def _true_positives(pairs, thresholds):
    rows, cols, iou, _, _ = pairs
    candidate = iou >= thresholds.min()
    rows, cols, iou = rows[candidate], cols[candidate], iou[candidate]
    if rows.size == 0:
        return np.zeros(len(thresholds), dtype=np.int64)
    tps = np.empty(len(thresholds), dtype=np.int64)
    order = np.argsort(thresholds, kind="stable")
    for n_done, i in enumerate(order):
        edges = iou >= thresholds[i]
        r, c = rows[edges], cols[edges]
        if r.size == 0 or not (_has_duplicates(r) or _has_duplicates(c)):
            # Each object has at most one candidate here, hence at every higher threshold:
            # TP is a count (always so above 0.5, where IoU > 0.5 pairs are unique).
            rest = order[n_done:]
            tps[rest] = np.count_nonzero(iou[None, :] >= thresholds[rest, None], axis=1)
            break
        tps[i] = _max_matching(r, c)
    return tps


def _has_duplicates(idx):
    return np.bincount(idx).max() > 1


def _max_matching(rows, cols):
    """Size of a maximum matching in the bipartite graph given by its edges."""
    if rows.size == 0:
        return 0
    deg_r, deg_c = np.bincount(rows), np.bincount(cols)
    alone = (deg_r[rows] == 1) & (deg_c[cols] == 1)  # an edge that is its own component
    n = int(np.count_nonzero(alone))
    if n < rows.size:
        r_ids, r = np.unique(rows[~alone], return_inverse=True)
        c_ids, c = np.unique(cols[~alone], return_inverse=True)
        adjacency = np.zeros((r_ids.size, c_ids.size))
        adjacency[r, c] = 1.0
        ri, ci = linear_sum_assignment(adjacency, maximize=True)
        n += int(adjacency[ri, ci].sum())
    return n


def _accuracies(pairs, tps):
    n_true, n_pred = pairs[3], pairs[4]
    tps = np.asarray(tps, dtype=np.int64)
    denom = np.maximum(n_true + n_pred - tps, 1)
    return np.where(tps > 0, tps / denom, 0.0)
