"""Readers for array containers: HDF5, zarr, NPZ splits, NPY stacks and per-image NPY, 4D TIFF time series."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from . import register_reader
from ._base import (
    Entry,
    ReaderError,
    check_pair,
    entry_id,
    find_base,
    natural_key,
    read_array,
    sorted_glob,
    to_instances,
)


def _keys(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _container_entries(
    root: Path,
    opener,
    files: str,
    raw: str | list[str],
    labels: str,
    base: str | None,
    label_mode: str,
    kind: str,
    order: str = "natural",
    crop_slices: dict[str, list[int | None]] | None = None,
    background_ids: dict[str, int] | None = None,
) -> list[Entry]:
    folder = find_base(root, base)
    paths = [p for p in folder.glob(files) if "__MACOSX" not in p.parts]
    paths = sorted(
        paths,
        key=lambda p: (
            p.relative_to(folder).as_posix()
            if order == "lexicographic"
            else natural_key(p.relative_to(folder).as_posix())
        ),
    )
    if not paths:
        raise ReaderError(f"No {kind} files match '{files}' under {folder}: wrong or incomplete data.")
    entries = []
    for path in paths:
        relative = path.relative_to(folder).as_posix()

        def load(path=path, relative=relative):
            try:
                with opener(path) as f:
                    arrays = [np.asarray(f[k][()]) for k in _keys(raw)]
                    lab = np.asarray(f[labels][()])
            except KeyError as err:
                raise ReaderError(f"{relative} lacks the expected key ({err}).") from err
            except OSError as err:
                raise ReaderError(f"Cannot read {relative}: {err}") from err
            image = arrays[0] if len(arrays) == 1 else np.stack(arrays, axis=-1)
            if path.name in (crop_slices or {}):  # torch-em trims these volumes along z at download
                window = slice(*crop_slices[path.name])
                image, lab = image[window], lab[window]
            if path.name in (background_ids or {}):  # an object id that is really background in this file
                lab = np.where(lab == background_ids[path.name], 0, lab)
            lab = to_instances(lab, label_mode)
            check_pair(image, lab, relative)
            return image, lab

        entries.append(Entry(id=entry_id(relative), key=path.stem, load=load, meta={"source": relative}))
    return entries


@register_reader("hdf5")
def read_hdf5(
    root: Path,
    *,
    files: str,
    raw: str | list[str],
    labels: str,
    base: str | None = None,
    label_mode: str = "instances",
    order: str = "natural",
    crop_slices: dict[str, list[int | None]] | None = None,
    background_ids: dict[str, int] | None = None,
) -> list[Entry]:
    """One image or volume per HDF5 file.

    The ``raw`` key (several keys are stacked as channels-last) and the ``labels`` key; files in ``natural``
    or ``lexicographic`` order of their paths. ``crop_slices`` maps a
    file name to ``[start, stop]`` along the first axis, applied to raw and labels (PlantSeg's
    ``CROPPING_VOLUMES``, which torch-em applies when it unpacks the download). ``background_ids`` maps a
    file name to a label id that becomes background (not a paper default: torch-em 0.10.9's later
    ``ROOT_BACKGROUND_IDS`` correction of PlantSeg root, for a corrected variant).
    """
    import h5py

    return _container_entries(
        root,
        lambda p: h5py.File(p, "r"),
        files,
        raw,
        labels,
        base,
        label_mode,
        "HDF5",
        order,
        crop_slices,
        background_ids,
    )


class _ZarrGroup:
    def __init__(self, path: Path) -> None:
        import zarr  # optional: only the zarr reader needs it

        self.group = zarr.open_group(str(path), mode="r")

    def __enter__(self):
        return self.group

    def __exit__(self, *exc) -> None:
        return None


@register_reader("zarr")
def read_zarr(
    root: Path,
    *,
    files: str,
    raw: str | list[str],
    labels: str,
    base: str | None = None,
    label_mode: str = "instances",
    order: str = "natural",
) -> list[Entry]:
    """Like ``hdf5`` for zarr groups (needs the optional ``zarr`` package)."""
    return _container_entries(root, _ZarrGroup, files, raw, labels, base, label_mode, "zarr", order)


@register_reader("npz")
def read_npz(
    root: Path,
    *,
    file: str,
    images: str = "X",
    labels: str = "y",
    image_channels: list[int] | None = None,
    label_channel: int | None = 0,
    base: str | None = None,
) -> list[Entry]:
    """One NPZ holding a whole split: ``images`` (N, H, W, C) and ``labels`` (N, H, W, K) (DeepCell layout).

    ``image_channels`` selects (and orders) image channels; ``label_channel`` picks the label channel.
    """
    folder = find_base(root, base)
    matches = sorted_glob(folder, file)
    if len(matches) != 1:
        raise ReaderError(f"Expected one file matching '{file}' under {folder}, found {len(matches)}.")
    path = matches[0]

    @functools.lru_cache(maxsize=1)
    def arrays() -> tuple[np.ndarray, np.ndarray]:
        try:
            with np.load(path, allow_pickle=False) as data:
                return np.asarray(data[images]), np.asarray(data[labels])
        except (KeyError, ValueError, OSError) as err:
            raise ReaderError(f"Cannot read arrays '{images}'/'{labels}' from {path.name}: {err}") from err

    try:
        with np.load(path, allow_pickle=False) as data:
            n = int(data[images].shape[0]) if images in data.files else 0
    except (ValueError, OSError) as err:
        raise ReaderError(f"Cannot read {path.name}: {err}") from err
    if n == 0:
        raise ReaderError(f"{path.name} holds no '{images}' array (keys: wrong file?).")

    def loader(i: int):
        def load():
            x, y = arrays()
            image = x[i]
            if image_channels is not None:
                image = image[..., image_channels]
            if image.ndim == 3 and image.shape[-1] == 1:
                image = image[..., 0]
            lab = y[i][..., label_channel] if label_channel is not None and y.ndim == 4 else y[i]
            return image, to_instances(lab)

        return load

    stem = entry_id(path.relative_to(folder))
    return [
        Entry(id=f"{stem}_{i:05d}", key=str(i), load=loader(i), meta={"source": path.name, "index": i})
        for i in range(n)
    ]


def _pannuke_instances(masks: np.ndarray) -> np.ndarray:
    """PanNuke masks (H, W, 6) as one instance map.

    Channels 0-4 are per-class instance maps, 5 is background; ids are made unique across classes by
    offsetting each class's ids past the previous maximum.
    """
    out = np.zeros(masks.shape[:2], np.uint32)
    offset = 0
    for c in range(min(5, masks.shape[-1])):
        plane = np.rint(masks[..., c]).astype(np.int64)
        ids = np.unique(plane[plane > 0])
        if ids.size == 0:
            continue
        lut = np.zeros(int(plane.max()) + 1, np.uint32)
        lut[ids] = np.arange(offset + 1, offset + 1 + ids.size)
        out[plane > 0] = lut[plane[plane > 0]]
        offset += ids.size
    return out


@register_reader("npy-stack")
def read_npy_stack(
    root: Path, *, images: str, labels: str, base: str | None = None, label_mode: str = "pannuke"
) -> list[Entry]:
    """A stack of images in one NPY (N, H, W, C) with a matching label stack (PanNuke layout)."""
    folder = find_base(root, base)
    image_files, label_files = sorted_glob(folder, images), sorted_glob(folder, labels)
    if len(image_files) != 1 or len(label_files) != 1:
        raise ReaderError(
            f"Expected one '{images}' and one '{labels}' under {folder}, found "
            f"{len(image_files)} and {len(label_files)}."
        )
    try:
        x = np.load(image_files[0], mmap_mode="r", allow_pickle=False)
        y = np.load(label_files[0], mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as err:
        raise ReaderError(f"Cannot read the NPY stacks in {folder}: {err}") from err
    if x.shape[0] != y.shape[0] or x.shape[1:3] != y.shape[1:3]:
        raise ReaderError(f"Image stack {x.shape} and label stack {y.shape} do not match.")

    def loader(i: int):
        def load():
            # PanNuke stores uint8 values as float64; kept so, as in the paper's prepared TIFFs (a method that
            # converts non-uint8 input by min-max, e.g. micro-sam's, sees what the authors' run saw)
            image = np.asarray(x[i])
            lab = (
                _pannuke_instances(np.asarray(y[i]))
                if label_mode == "pannuke"
                else to_instances(np.asarray(y[i]), label_mode)
            )
            return image, lab

        return load

    return [Entry(id=f"{i:05d}", key=str(i), load=loader(i), meta={"index": i}) for i in range(x.shape[0])]


@register_reader("npy-pairs")
def read_npy_pairs(
    root: Path, *, files: str, image_channels: list[int], label_channel: int, base: str | None = None
) -> list[Entry]:
    """One NPY per image holding image channels and the instance label as the last axis (LyNSeC layout)."""
    folder = find_base(root, base)
    paths = sorted_glob(folder, files)
    if not paths:
        raise ReaderError(f"No files match '{files}' under {folder}: wrong or incomplete data.")

    def loader(path: Path):
        def load():
            data = read_array(path)
            if data.ndim != 3 or data.shape[-1] <= max(max(image_channels), label_channel):
                raise ReaderError(f"{path.name} has shape {data.shape}; expected (H, W, channels).")
            return data[..., image_channels], to_instances(data[..., label_channel])

        return load

    return [
        Entry(
            id=entry_id(p.relative_to(folder)),
            key=p.stem,
            load=loader(p),
            meta={"source": p.relative_to(folder).as_posix()},
        )
        for p in paths
    ]


@register_reader("tiff-timepoints")
def read_tiff_timepoints(
    root: Path, *, raw: str, labels: str, timepoints: list[int], base: str | None = None
) -> list[Entry]:
    """A 4D (t, z, y, x) TIFF plus one 3D label TIFF per annotated timepoint (Parhyale layout).

    ``timepoints`` are the 0-based time indices of the annotated volumes, matched in natural order to the
    label files found by ``labels``.
    """
    folder = find_base(root, base)
    raw_files, label_files = sorted_glob(folder, raw), sorted_glob(folder, labels)
    if len(raw_files) != 1:
        raise ReaderError(f"Expected one raw file matching '{raw}' under {folder}, found {len(raw_files)}.")
    if len(label_files) != len(timepoints):
        raise ReaderError(
            f"Expected {len(timepoints)} label files matching '{labels}', found {len(label_files)}."
        )

    @functools.lru_cache(maxsize=1)
    def series() -> np.ndarray:  # the whole series is read once, then sliced per timepoint
        return read_array(raw_files[0])

    def loader(t: int, label_file: Path):
        def load():
            data = series()
            if data.ndim != 4 or t >= data.shape[0]:
                raise ReaderError(f"{raw_files[0].name} has shape {data.shape}; no timepoint {t}.")
            image, lab = data[t], to_instances(read_array(label_file))
            check_pair(image, lab, f"{raw_files[0].name}[t={t}]")
            return image, lab

        return load

    return [
        Entry(
            id=f"tp{t + 1:02d}",
            key=str(t + 1),
            load=loader(t, lf),
            meta={"source": raw_files[0].name, "timepoint": t, "label_source": lf.name},
        )
        for t, lf in zip(timepoints, label_files)
    ]
