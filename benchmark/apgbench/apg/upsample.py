"""Exact bounding-box upsampling of SAM's low-resolution mask logits.

SAM's mask decoder predicts 256x256 logits over the padded 1024x1024 model input. ``SamPredictor`` turns
them into full-size logits with two bilinear resizes (to 1024x1024, crop to the resized input, resize to
the original image) and micro-sam then thresholds at 0 and computes the stability score at +-1, all at full
resolution for every mask. Both resizes are linear and separable, so the full-size logits are
``A_rows @ L @ A_cols.T`` with two fixed banded matrices, and a full-size value can exceed a threshold only
where some low-resolution value that contributes to it does. :class:`LogitUpsampler` therefore upsamples
only the box that covers every pixel above ``threshold - offset`` — same mask, same stability score,
a fraction of the work.
"""

from __future__ import annotations

import numpy as np

from .masks import PromptMasks, tight_box


def bilinear_matrix(in_size: int, out_size: int) -> np.ndarray:
    """``(out_size, in_size)`` matrix of 1-D bilinear resizing with ``align_corners=False`` (PyTorch's)."""
    scale = in_size / out_size
    src = np.maximum((np.arange(out_size) + 0.5) * scale - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    w1 = src - i0
    matrix = np.zeros((out_size, in_size))
    rows = np.arange(out_size)
    np.add.at(matrix, (rows, i0), 1.0 - w1)
    np.add.at(matrix, (rows, i1), w1)
    return matrix


def sam_resize_matrix(lowres: int, padded: int, input_size: int, original_size: int) -> np.ndarray:
    """One axis of SAM's ``postprocess_masks``: lowres -> padded, crop to input_size -> original_size."""
    first = bilinear_matrix(lowres, padded)[:input_size]
    return (bilinear_matrix(input_size, original_size) @ first).astype(np.float32)


class LogitUpsampler:
    """Turn low-resolution mask logits into :class:`PromptMasks` exactly as SAM + micro-sam would.

    Parameters
    ----------
    original_size : tuple of int
        The image's ``(H, W)``.
    input_size : tuple of int
        The resized image inside the padded model input (``SamPredictor.input_size``).
    lowres : int
        Side of the logits (256 for SAM).
    padded : int
        Side of the padded model input (1024 for SAM).
    mask_threshold : float
        Logit threshold of the mask (SAM: 0).
    stability_offset : float
        Offset of the stability score thresholds (SAM: 1).
    """

    def __init__(
        self,
        original_size,
        input_size,
        lowres: int = 256,
        padded: int = 1024,
        mask_threshold: float = 0.0,
        stability_offset: float = 1.0,
    ) -> None:
        self.shape = tuple(int(s) for s in original_size)
        self.mask_threshold = float(mask_threshold)
        self.offset = float(stability_offset)
        self.axes = [sam_resize_matrix(lowres, padded, int(i), o) for i, o in zip(input_size, self.shape)]
        # Per axis: for each low-res index, the first/last full-size index it contributes to; for each
        # full-size index, the first/last low-res index it reads.
        self.out_range, self.in_range = [], []
        for a in self.axes:
            nz = a != 0
            used = nz.any(axis=0)
            first = np.where(used, nz.argmax(axis=0), a.shape[0])
            last = np.where(used, a.shape[0] - 1 - nz[::-1].argmax(axis=0), -1)
            self.out_range.append((first, last))
            self.in_range.append((nz.argmax(axis=1), a.shape[1] - 1 - nz[:, ::-1].argmax(axis=1)))
        self.extent = [int(np.flatnonzero((a != 0).any(axis=0)).max()) + 1 for a in self.axes]

    def _span(self, axis: int, low: np.ndarray) -> tuple[int, int, int, int]:
        """Full-size range reached by low-res indices ``low``, and the low-res range that range reads."""
        first, last = self.out_range[axis]
        o0, o1 = int(first[low].min()), int(last[low].max()) + 1
        lo, hi = self.in_range[axis]
        return o0, o1, int(lo[o0]), int(hi[o1 - 1]) + 1

    def __call__(
        self,
        logits: np.ndarray,
        iou_predictions: np.ndarray,
        offset=(0, 0),
        shape: tuple[int, int] | None = None,
    ) -> PromptMasks:
        """Masks from low-res logits ``(N, lowres, lowres)``.

        ``offset`` shifts the boxes (a tile's origin in a larger image of ``shape``).
        """
        logits = np.asarray(logits, dtype=np.float32)
        lower, upper = self.mask_threshold - self.offset, self.mask_threshold + self.offset
        ay, ax = self.axes
        boxes, crops, stability = [], [], []
        for lr in logits[:, : self.extent[0], : self.extent[1]]:
            candidate = lr > lower
            rows, cols = np.flatnonzero(candidate.any(axis=1)), np.flatnonzero(candidate.any(axis=0))
            if rows.size == 0:
                boxes.append((0, 0, 0, 0))
                crops.append(np.zeros((0, 0), bool))
                stability.append(0.0)
                continue
            r0, r1, i0, i1 = self._span(0, rows)
            c0, c1, j0, j1 = self._span(1, cols)
            values = ay[r0:r1, i0:i1] @ lr[i0:i1, j0:j1] @ ax[c0:c1, j0:j1].T
            union = np.count_nonzero(values > lower)
            inter = np.count_nonzero(values > upper)
            stability.append(np.float32(inter) / np.float32(union) if union else 0.0)
            mask = values > self.mask_threshold
            b = tight_box(mask)
            crops.append(mask[b[0] : b[2], b[1] : b[3]])
            boxes.append((r0 + b[0], c0 + b[1], r0 + b[2], c0 + b[3]) if b[2] else (0, 0, 0, 0))
        box_array = np.array(boxes, dtype=np.int64).reshape(-1, 4)
        nonempty = box_array[:, 2] > 0
        box_array[nonempty] += np.array([offset[0], offset[1], offset[0], offset[1]])
        size = shape or self.shape
        return PromptMasks((size[0], size[1]), box_array, crops, iou_predictions, np.array(stability))
