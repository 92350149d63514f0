"""Point-prompted masks as bounding-box crops, the promptable-model protocol, mask NMS and painting.

A promptable model answers a batch of point prompts with one mask per prompt. Full-resolution masks cost
``N x H x W`` memory and time in every later step (micro-sam's NMS compares them pairwise at full size), so
masks travel here as :class:`PromptMasks`: a tight bounding box per mask plus the boolean crop inside it.
Every later step (size filter, IoU, painting) then costs in proportion to the object, not the image.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import skimage as ski


@dataclass
class PromptMasks:
    """Masks answering point prompts, stored as crops.

    Parameters
    ----------
    shape : tuple of int
        The image's ``(H, W)``.
    boxes : ndarray of int, shape (N, 4)
        ``(row0, col0, row1, col1)`` per mask, end exclusive; ``(0, 0, 0, 0)`` for an empty mask.
    crops : list of ndarray of bool
        Mask ``i`` restricted to its box, shape ``(row1 - row0, col1 - col0)``.
    iou_predictions : ndarray of float32, shape (N,)
        The model's predicted IoU per mask.
    stability_scores : ndarray of float32, shape (N,)
        SAM's stability score per mask (IoU of the masks thresholded at logit +1 and -1); 1 if unknown.
    """

    shape: tuple[int, int]
    boxes: np.ndarray
    crops: list[np.ndarray]
    iou_predictions: np.ndarray
    stability_scores: np.ndarray
    areas: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.int64).reshape(-1, 4)
        self.iou_predictions = np.asarray(self.iou_predictions, dtype=np.float32).reshape(-1)
        self.stability_scores = np.asarray(self.stability_scores, dtype=np.float32).reshape(-1)
        n = len(self.crops)
        if not (len(self.boxes) == len(self.iou_predictions) == len(self.stability_scores) == n):
            raise ValueError("boxes, crops, iou_predictions and stability_scores need one entry per mask.")
        self.areas = np.array([int(np.count_nonzero(c)) for c in self.crops], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.crops)

    @classmethod
    def empty(cls, shape: tuple[int, int]) -> PromptMasks:
        """No masks."""
        return cls((shape[0], shape[1]), np.zeros((0, 4), np.int64), [], np.zeros(0), np.zeros(0))

    @classmethod
    def from_masks(cls, masks, iou_predictions, stability_scores=None) -> PromptMasks:
        """Build from full-size boolean masks ``(N, H, W)`` (convenient for simple models and tests)."""
        masks = np.asarray(masks, dtype=bool)
        boxes, crops = [], []
        for mask in masks:
            box = tight_box(mask)
            boxes.append(box)
            crops.append(mask[box[0] : box[2], box[1] : box[3]])
        stab = np.ones(len(masks)) if stability_scores is None else stability_scores
        return cls(tuple(masks.shape[1:]), np.array(boxes).reshape(-1, 4), crops, iou_predictions, stab)

    @classmethod
    def concatenate(cls, parts: list[PromptMasks], shape: tuple[int, int]) -> PromptMasks:
        """Join the answers of several prompt batches, in order."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty(shape)
        return cls(
            (shape[0], shape[1]),
            np.concatenate([p.boxes for p in parts]),
            [c for p in parts for c in p.crops],
            np.concatenate([p.iou_predictions for p in parts]),
            np.concatenate([p.stability_scores for p in parts]),
        )

    def select(self, index: np.ndarray) -> PromptMasks:
        """The masks at ``index`` (integer array), in that order."""
        index = np.asarray(index, dtype=np.int64)
        return PromptMasks(
            self.shape,
            self.boxes[index],
            [self.crops[i] for i in index],
            self.iou_predictions[index],
            self.stability_scores[index],
        )

    def full_mask(self, i: int) -> np.ndarray:
        """Mask ``i`` at full image size (for inspection; the algorithms never need it)."""
        out = np.zeros(self.shape, dtype=bool)
        r0, c0, r1, c1 = self.boxes[i]
        out[r0:r1, c0:c1] = self.crops[i]
        return out


@runtime_checkable
class PromptableModel(Protocol):
    """A model that segments the object under each of a batch of positive point prompts.

    ``points`` is an ``(N, 2)`` integer array of ``(row, col)`` image coordinates (one positive point per
    prompt). The answer holds one mask per point, in the same order, with a quality score. Models that
    decode low-resolution logits should upsample only inside each mask's bounding box
    (:class:`apgbench.apg.upsample.LogitUpsampler` does that exactly).
    """

    def predict_points(self, points: np.ndarray) -> PromptMasks:  # pragma: no cover - protocol
        """Masks and quality scores for positive point prompts ``points`` ``(N, 2)`` in (row, col)."""
        ...


def tight_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Bounding box ``(row0, col0, row1, col1)`` (end exclusive) of a boolean mask; zeros when empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return (0, 0, 0, 0)
    cols = np.flatnonzero(mask.any(axis=0))
    return (int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1)


#: Rankings of masks in NMS. ``iou-x-stability`` is spelled so that a shell leaves it alone unquoted.
RANKINGS = ("iou-x-stability", "iou")
#: Earlier spellings, still accepted with a ``DeprecationWarning``.
DEPRECATED_RANKINGS = {"iou*stability": "iou-x-stability"}


def check_ranking(ranking: str) -> str:
    """``ranking`` in its current spelling (an earlier one warns); an unknown one raises ``ValueError``."""
    if ranking in DEPRECATED_RANKINGS:
        new = DEPRECATED_RANKINGS[ranking]
        warnings.warn(
            f"ranking '{ranking}' is deprecated; write '{new}' (it needs no quotes in a shell).",
            DeprecationWarning,
            stacklevel=3,
        )
        return new
    if ranking not in RANKINGS:
        raise ValueError(f"Unknown ranking '{ranking}'; expected one of {', '.join(map(repr, RANKINGS))}.")
    return ranking


def ranking_scores(masks: PromptMasks, ranking: str = "iou-x-stability") -> np.ndarray:
    """Scores that order masks in NMS: micro-sam's IoU x stability (default) or the paper's ``iou``."""
    if check_ranking(ranking) == "iou":
        return masks.iou_predictions.astype(np.float32)
    return (masks.iou_predictions * masks.stability_scores).astype(np.float32)


def _overlap(masks: PromptMasks, i: int, j: int) -> int:
    """Pixel count of mask i AND mask j, computed on the intersection of their boxes only."""
    a, b = masks.boxes[i], masks.boxes[j]
    r0, c0 = max(a[0], b[0]), max(a[1], b[1])
    r1, c1 = min(a[2], b[2]), min(a[3], b[3])
    if r0 >= r1 or c0 >= c1:
        return 0
    ca = masks.crops[i][r0 - a[0] : r1 - a[0], c0 - a[1] : c1 - a[1]]
    cb = masks.crops[j][r0 - b[0] : r1 - b[0], c0 - b[1] : c1 - b[1]]
    return int(np.count_nonzero(ca & cb))


def mask_nms(
    masks: PromptMasks, scores: np.ndarray, threshold: float = 0.9, measure: str = "iou"
) -> np.ndarray:
    """Greedy non-maximum suppression on mask overlap.

    Masks are visited by decreasing score (ties by index); a mask is kept unless a kept mask overlaps it by
    more than ``threshold``. Overlaps are computed lazily, only for pairs whose boxes intersect and whose
    second mask is still undecided, on the box intersection only.

    Parameters
    ----------
    masks : PromptMasks
        The candidate masks.
    scores : ndarray, shape (N,)
        Ranking scores (higher first).
    threshold : float
        Suppress when overlap > threshold (micro-sam keeps ``overlap <= threshold``).
    measure : {"iou", "iomin"}
        Intersection over union, or over the smaller mask's area (micro-sam's ``intersection_over_min``).

    Returns
    -------
    keep : ndarray of int
        Indices of the kept masks, in visiting order.
    """
    n = len(masks)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if measure not in ("iou", "iomin"):
        raise ValueError(f"Unknown NMS measure '{measure}'; expected 'iou' or 'iomin'.")
    order = np.argsort(-np.asarray(scores, dtype=np.float32), kind="stable")
    b = masks.boxes
    areas = masks.areas
    thr = np.float32(threshold)
    done = np.zeros(n, dtype=bool)
    keep = []
    for i in order:
        if done[i]:
            continue
        done[i] = True
        keep.append(i)
        # Candidates: undecided masks whose boxes intersect box i (disjoint boxes have zero overlap);
        # one O(N) test per kept mask, no N x N matrix.
        hits = (b[i, 0] < b[:, 2]) & (b[:, 0] < b[i, 2]) & (b[i, 1] < b[:, 3]) & (b[:, 1] < b[i, 3])
        for j in np.flatnonzero(hits & ~done):
            inter = _overlap(masks, i, j)
            if inter == 0:
                continue
            if measure == "iou":
                value = np.float32(inter) / np.float32(areas[i] + areas[j] - inter)
            else:
                value = np.float32(inter) / np.float32(min(areas[i], areas[j]) + 1e-6)
            if value > thr:
                done[j] = True
    return np.asarray(keep, dtype=np.int64)


def paint_prompt_masks(
    masks: PromptMasks,
    order: np.ndarray,
    *,
    min_size: int = 25,
    paint_order: str = "area",
    split_components: bool = True,
    connectivity: int = 2,
) -> np.ndarray:
    """Paint ranked prompt masks into a label image: the first mask painted on a pixel keeps it, then pieces
    are split and small ones removed (compare ``methods.paint_masks_last_wins``: later masks overwrite).

    Parameters
    ----------
    masks : PromptMasks
        The masks.
    order : ndarray of int
        Indices of the masks to paint, ranked (e.g. the NMS keep list).
    min_size : int
        Connected pieces smaller than this are removed after painting.
    paint_order : {"area", "score"}
        ``area``: largest mask first (micro-sam's ``mask_data_to_segmentation``; ties keep ``order``), so
        large masks win overlaps. ``score``: in ``order``, so the best-ranked mask wins.
    split_components : bool
        Split each painted mask into its connected pieces (micro-sam does), before the size filter.
    connectivity : int
        2 (8-neighbourhood, the paper's code: skimage's default) or 1 (4-neighbourhood, micro-sam
        >= 1.6.3) for that split.

    Returns
    -------
    labels : ndarray of uint32
        Objects numbered 1..N in raster order of their first pixel.
    """
    order = np.asarray(order, dtype=np.int64)
    if paint_order == "area":
        order = order[np.argsort(-masks.areas[order], kind="stable")]
    elif paint_order != "score":
        raise ValueError(f"Unknown paint_order '{paint_order}'; expected 'area' or 'score'.")
    labels = np.zeros(masks.shape, dtype=np.uint32)
    for value, i in enumerate(order, start=1):
        r0, c0, r1, c1 = masks.boxes[i]
        region = labels[r0:r1, c0:c1]
        region[masks.crops[i] & (region == 0)] = value
    if split_components:
        labels = ski.measure.label(labels, background=0, connectivity=connectivity).astype(np.uint32)
    if min_size > 0 and labels.max() > 0:
        sizes = np.bincount(labels.ravel())
        small = sizes < min_size
        small[0] = False
        if small.any():
            labels[small[labels]] = 0
    return ski.segmentation.relabel_sequential(labels)[0].astype(np.uint32)
