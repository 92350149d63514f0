"""Turn a dataset's unpacked files into its benchmark test split (the paper's preparation rules).

Order of operations, as in the paper's code (micro-sam ``scripts/apg_experiments/util.py``):

1. the reader lists the source images/volumes in natural-sort order;
2. the split rule keeps the test entries (``index`` rules at ``level: slice`` count 2D slices instead);
3. 3D volumes become 2D slices along ``slice_axis``;
4. channel handling (channel-first RGB is made channels-last; grey/rgb/pack), background id -> 0,
   optional connected components;
5. resize, zero-pad or 512x512 crop (centre, or centred on the foreground's bounding box);
6. images whose labels are empty (unless ``drop_empty`` is false: the seven datasets the paper's code took
   straight from torch-em paths are not filtered), or have fewer than ``min_objects`` unique values
   (background counts, as in micro-sam's ``len(np.unique(label)) >= min_objects``), are dropped.

3D test sets (``preparation.volume``) keep sub-volumes instead of slices: :mod:`.volumes`.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import InvalidInputError
from .prepared import Sample, write_prepared
from .readers import Entry, ReaderError, get_reader
from .readers._base import natural_key, sorted_glob
from .schema import DatasetConfig, Preparation, Split


def read_entries(config: DatasetConfig, root: str | os.PathLike) -> list[Entry]:
    """All source entries the dataset's reader finds under ``root`` (before the split)."""
    reader = get_reader(config.format.reader)
    try:
        return reader(Path(root), **config.format.options)
    except TypeError as err:
        raise InvalidInputError(
            f"Bad reader options for '{config.id}' ({config.format.reader}): {err}"
        ) from err


def select_split(entries: list[Entry], split: Split, root: str | os.PathLike | None = None) -> list[Entry]:
    """The entries of the test split, for image-level rules (``index`` with ``level: slice`` passes all)."""
    options = split.options
    if split.rule in ("official", "all"):
        if "csv" in options:
            return _csv_listed(entries, options, Path(root or "."))
        return list(entries)
    if split.rule == "index":
        if options.get("level", "image") == "slice":
            return list(entries)
        window = slice(options.get("start"), options.get("stop"))
        if options.get("per_group"):
            return [e for group in _groups(entries).values() for e in group[window]]
        return list(entries[window])
    if options.get("generator") == "sklearn":  # train_test_split(names, test_size, random_state=seed), which
        # draws np.random.RandomState(seed).permutation(n)[:ceil(test_size * n)] over the list as given
        n_test = math.ceil(float(options["fraction"]) * len(entries))
        picked = np.random.RandomState(split.seed).permutation(len(entries))[:n_test]
        chosen_ids = {entries[i].id for i in picked}
        return [e for e in entries if e.id in chosen_ids]
    # seeded-random: a fixed permutation per stratum; ceil(fraction * n) test items, as sklearn's test_size
    rng = np.random.default_rng(split.seed)
    strata = _groups(entries) if options.get("stratify") else {"": list(entries)}
    chosen: set[str] = set()
    for name in sorted(strata, key=natural_key):
        members = sorted(strata[name], key=lambda e: natural_key(e.id))
        n_test = math.ceil(float(options["fraction"]) * len(members))
        chosen.update(members[i].id for i in rng.permutation(len(members))[:n_test])
    return [e for e in entries if e.id in chosen]


def _groups(entries: list[Entry]) -> dict[str, list[Entry]]:
    groups: dict[str, list[Entry]] = {}
    for entry in entries:
        groups.setdefault(entry.group, []).append(entry)
    return groups


def _csv_listed(entries: list[Entry], options: dict, root: Path) -> list[Entry]:
    files = sorted_glob(root, options["csv"])
    if len(files) != 1:
        raise ReaderError(f"Expected one split file matching '{options['csv']}', found {len(files)}.")
    with open(files[0], newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    wanted = {
        str(r[options.get("id_column", "id")])
        for r in rows
        if str(r[options.get("column", "split")]) == str(options.get("value", "test"))
    }
    return [e for e in entries if e.key in wanted]


def _channels_last(image: np.ndarray) -> np.ndarray:
    if image.ndim == 3 and image.shape[0] in (2, 3, 4) and image.shape[-1] not in (2, 3, 4):
        return np.moveaxis(image, 0, -1)
    return image


def apply_channels(image: np.ndarray, prep: Preparation) -> np.ndarray | None:
    """Channel handling of one 2D image; ``None`` means "drop this image" (rgb with ``drop_other``)."""
    opts = prep.channel_options
    image = _channels_last(image)
    if prep.channels == "grey":
        return image[..., opts.get("index", 0)] if image.ndim == 3 else image
    if prep.channels == "rgb":
        if image.ndim == 3 and image.shape[-1] == 3:
            return image
        if opts.get("drop_other"):
            return None
        if image.ndim == 3 and image.shape[-1] == 4:
            return image[..., :3]
        raise ReaderError(f"Expected an RGB image, got shape {image.shape}.")
    if prep.channels in ("pack", "two-channel"):
        if image.ndim != 3:
            raise ReaderError(f"Expected a multi-channel image to pack, got shape {image.shape}.")
        image = image[..., opts.get("order", list(range(image.shape[-1])))]
        if opts.get("normalize") == "minmax-uint8":
            image = image.astype(np.float32)
            image -= image.min(axis=(0, 1))
            image /= image.max(axis=(0, 1)) + 1e-7
            image = (image * 255).astype(np.uint8)
        size = opts.get("pad_channels", 3 if prep.channels == "pack" else image.shape[-1])
        if image.shape[-1] < size:
            pad = np.zeros((*image.shape[:2], size - image.shape[-1]), image.dtype)
            image = np.concatenate([image, pad], axis=-1)
        return image
    return image


def crop_box(labels: np.ndarray, size: int, mode: str) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the crop: centre, or centred on the foreground bounding box."""
    rows, cols = labels.shape
    h, w = min(size, rows), min(size, cols)
    top, left = (rows - h) // 2, (cols - w) // 2
    if mode == "foreground-center" and labels.any():
        ys, xs = np.nonzero(labels)
        cy, cx = (ys.min() + ys.max()) // 2, (xs.min() + xs.max()) // 2
        top = int(max(0, min(cy - h // 2, rows - h)))
        left = int(max(0, min(cx - w // 2, cols - w)))
    return top, left, h, w


def prepare_image(
    image: np.ndarray, labels: np.ndarray, prep: Preparation
) -> tuple[np.ndarray, np.ndarray, dict] | None:
    """Apply the preparation rules to one 2D pair; ``None`` if the image is dropped."""
    image = apply_channels(image, prep)
    if image is None:
        return None
    labels = np.array(labels, copy=True)
    if image.shape[:2] != labels.shape:
        raise ReaderError(f"Image shape {image.shape} does not match label shape {labels.shape}.")
    if prep.background_label is not None:
        labels[labels == prep.background_label] = 0
    if prep.connected_components:
        from skimage.measure import label as connected

        labels = connected(labels).astype(np.uint32)  # value-aware, as the paper's code
    meta: dict = {"original_shape": list(image.shape)}
    if prep.resize is not None:
        from skimage.transform import resize

        shape = (prep.resize, prep.resize)
        dtype = image.dtype
        image = resize(image, shape + image.shape[2:], anti_aliasing=True, preserve_range=True).astype(dtype)
        if (
            prep.label_resize == "linear-truncate"
        ):  # the paper's HPA code: skimage's default order 1 on labels
            labels = resize(labels, shape, anti_aliasing=False, preserve_range=True).astype(labels.dtype)
        else:
            labels = resize(labels, shape, order=0, anti_aliasing=False, preserve_range=True).astype(
                labels.dtype
            )
    if prep.pad_to is not None:
        pad = [(0, max(0, prep.pad_to - s)) for s in labels.shape]
        labels = np.pad(labels, pad)
        image = np.pad(image, pad + [(0, 0)] * (image.ndim - 2))
    if prep.crop is not None:
        top, left, h, w = crop_box(labels, prep.crop, prep.crop_mode)
        image, labels = image[top : top + h, left : left + w], labels[top : top + h, left : left + w]
        meta["crop"] = [top, left, h, w]
    n_values = len(np.unique(labels))
    if prep.drop_empty and n_values == 1 and not labels.any():
        return None
    if prep.min_objects is not None and n_values < prep.min_objects:
        return None
    return np.ascontiguousarray(image), labels, meta


def iter_samples(config: DatasetConfig, entries: list[Entry]) -> Iterator[Sample]:
    """Prepared test samples from the test entries (slicing, slice-level index split, preparation)."""
    from .volumes import slice_window, volume_samples  # volumes.py uses this module's preparation steps

    if config.volumetric:  # a 3D test set (`<id>-3d`): whole sub-volumes, see volumes.py
        yield from volume_samples(config, entries)
        return
    prep, split = config.preparation, config.split
    window = slice_window(split)
    counter = 0
    for entry in entries:
        try:
            image, labels = entry.load()
        except ReaderError as err:
            raise ReaderError(f"{config.id}: {err}") from err
        if config.ndim == 3:
            if labels.ndim != 3:
                raise ReaderError(f"{config.id}: entry '{entry.id}' is not a volume (labels {labels.shape}).")
            axis = prep.slice_axis
            pairs = [
                (f"{entry.id}_z{z:03d}", np.take(image, z, axis=axis), np.take(labels, z, axis=axis), z)
                for z in range(labels.shape[axis])
            ]
        else:
            pairs = [(entry.id, image, labels, None)]
        for image_id, img, lab, z in pairs:
            if window is not None:
                index, counter = counter, counter + 1
                start, stop = window
                if index < start or (stop is not None and index >= stop):
                    continue
            try:
                result = prepare_image(img, lab, prep)
            except ReaderError as err:
                raise ReaderError(f"{config.id}: image '{image_id}': {err}") from err
            if result is None:
                continue
            out_image, out_labels, meta = result
            meta.update(entry.meta)
            if entry.group:
                meta["group"] = entry.group
            if z is not None:
                meta["slice"] = z
            yield Sample(image_id, out_image, out_labels, meta)


def prepare_dataset(config: DatasetConfig, root: str | os.PathLike, out_path: str | os.PathLike) -> int:
    """Read, split and prepare a dataset from its unpacked folder into ``out_path`` (atomic HDF5).

    Returns
    -------
    int
        Number of prepared test images.
    """
    entries = select_split(read_entries(config, root), config.split, root)
    if not entries:
        raise ReaderError(f"{config.id}: the split rule selected no source images.")
    return write_prepared(out_path, config.id, iter_samples(config, entries))
