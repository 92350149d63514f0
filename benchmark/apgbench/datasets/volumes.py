"""3D test sets (``<id>-3d``): whole sub-volumes instead of 2D slices, by a documented, deterministic rule.

For each test volume of the dataset (reader order, after an image-level split rule):

1. the volume's test slices: for ``index`` splits at ``level: slice`` (the paper's "first N slices of the
   concatenated volumes are validation"), the slices of this volume inside that window, so the 3D test set
   holds exactly the voxels of the paper's 2D test slices; other rules keep every slice;
2. at most ``preparation.volume.depth`` contiguous slices of those, centred on the middle of the labelled
   z-range (ties towards the lower slice);
3. per-slice channel handling as for 2D images; background id -> 0; optional connected components (in 3D);
4. a ``preparation.crop`` x ``crop`` window in y/x, centred, or centred on the foreground bounding box of the
   labels' projection along z (``crop_mode``), the same window for all slices;
5. volumes without labels, or with fewer than ``min_objects`` unique label values (background counts, as for
   2D images), are dropped.

The sample id is the source entry's id; its metadata record the kept slice range and crop.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .prepared import Sample
from .readers import Entry, ReaderError
from .schema import DatasetConfig


def window_slices(n_slices: int, counter: int, window: tuple[int, int | None] | None) -> tuple[int, int]:
    """``[lo, hi)`` of a volume's slices inside a slice-level window over the concatenated slices.

    ``counter`` is the number of slices of the volumes before this one.
    """
    if window is None:
        return 0, n_slices
    start, stop = window
    lo = min(max(start - counter, 0), n_slices)
    hi = n_slices if stop is None else min(max(stop - counter, 0), n_slices)
    return lo, max(lo, hi)


def depth_block(labels: np.ndarray, depth: int | None) -> tuple[int, int]:
    """``[lo, hi)`` of at most ``depth`` slices centred on the middle of the labelled z-range."""
    n = labels.shape[0]
    if depth is None or depth >= n:
        return 0, n
    labelled = np.flatnonzero(labels.reshape(n, -1).any(axis=1))
    middle = (labelled[0] + labelled[-1]) // 2 if labelled.size else n // 2
    lo = int(min(max(middle - (depth - 1) // 2, 0), n - depth))
    return lo, lo + depth


def slice_window(split) -> tuple[int, int | None] | None:
    """``(start, stop)`` of a split that indexes the slices of all volumes (``level: slice``), else None."""
    if split.rule == "index" and split.options.get("level") == "slice":
        return (split.options.get("start") or 0, split.options.get("stop"))
    return None


def volume_samples(config: DatasetConfig, entries: list[Entry]) -> Iterator[Sample]:
    """Prepared test volumes of a 3D test set (see the module notes for the rule)."""
    from .prepare import apply_channels, crop_box

    prep, split = config.preparation, config.split
    if prep.resize is not None or prep.pad_to is not None:
        raise ReaderError(f"{config.id}: resize and pad_to are not supported for 3D test sets.")
    window = slice_window(split)
    counter = 0
    for entry in entries:
        try:
            image, labels = entry.load()
        except ReaderError as err:
            raise ReaderError(f"{config.id}: {err}") from err
        if labels.ndim != 3:
            raise ReaderError(f"{config.id}: entry '{entry.id}' is not a volume (labels {labels.shape}).")
        image, labels = np.moveaxis(image, prep.slice_axis, 0), np.moveaxis(labels, prep.slice_axis, 0)
        n_slices = labels.shape[0]
        lo, hi = window_slices(n_slices, counter, window)
        counter += n_slices
        if hi <= lo:
            continue
        labels = np.array(labels[lo:hi], copy=True)
        if prep.background_label is not None:
            labels[labels == prep.background_label] = 0
        z0, z1 = depth_block(labels, prep.volume.depth)
        labels, lo, hi = labels[z0:z1], lo + z0, lo + z1
        planes = [apply_channels(image[z], prep) for z in range(lo, hi)]
        if any(plane is None for plane in planes):
            raise ReaderError(f"{config.id}: entry '{entry.id}' has slices the channel rule drops.")
        volume = np.stack(planes)
        if volume.shape[:3] != labels.shape:
            raise ReaderError(
                f"{config.id}: entry '{entry.id}': image {volume.shape} and labels {labels.shape} "
                "differ in shape."
            )
        if prep.connected_components:
            from skimage.measure import label as connected

            labels = connected(labels).astype(np.uint32)
        meta: dict = {"original_shape": [n_slices, *labels.shape[1:]], "slices": [lo, hi]}
        if prep.crop is not None:
            top, left, h, w = crop_box(labels.max(axis=0), prep.crop, prep.crop_mode)
            volume, labels = (
                volume[:, top : top + h, left : left + w],
                labels[:, top : top + h, left : left + w],
            )
            meta["crop"] = [top, left, h, w]
        n_values = len(np.unique(labels))
        if not labels.any() or (prep.min_objects is not None and n_values < prep.min_objects):
            continue
        meta.update(entry.meta)
        if entry.group:
            meta["group"] = entry.group
        yield Sample(entry.id, np.ascontiguousarray(volume), labels, meta)
