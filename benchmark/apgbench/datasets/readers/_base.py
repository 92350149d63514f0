"""Shared pieces of the readers: the entry type, file reading, natural sort, label conversions."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import InvalidInputError


class ReaderError(InvalidInputError):
    """The unpacked data do not look as the dataset config expects (missing, unreadable or mismatched files)."""


@dataclass
class Entry:
    """One source image (2D) or volume (3D) with its labels, loaded on demand.

    Attributes
    ----------
    id : str
        Unique, path-free id derived from the source path (becomes the prepared image id).
    load : callable
        Returns ``(image, labels)`` as numpy arrays.
    key : str
        Short name used by split lists (file stem by default).
    group : str
        Group for per-group split rules (magnification, modality, ...); empty if none.
    meta : dict
        Provenance written next to the prepared image (source file, ...).
    """

    id: str
    load: Callable[[], tuple[np.ndarray, np.ndarray]]
    key: str = ""
    group: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


_DIGITS = re.compile(r"([0-9]+)")


def natural_key(text: str) -> list:
    """Sort key ordering ``img2`` before ``img10``, exactly as natsort's default ``natsorted`` orders the
    paper's file lists (case-sensitive: ``B1`` before ``a1``).
    """
    text = unicodedata.normalize("NFD", str(text))  # natsort compares decomposed unicode
    return [int(part) if part.isdigit() else part for part in _DIGITS.split(text)]


def entry_id(relative: str | Path) -> str:
    """Prepared-image id from a relative source path: separators and odd characters become '_'."""
    text = str(relative).replace("\\", "/")
    text = re.sub(
        r"\.(tiff?|png|bmp|jpe?g|npy|h5|hdf5|zarr|json|geojson|xml)$", "", text, flags=re.IGNORECASE
    )
    text = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_.")
    return text or "image"


def find_base(root: Path, pattern: str | None) -> Path:
    """The folder a reader works in: ``root`` or the single folder matching ``pattern`` under it."""
    if not pattern:
        return root
    matches = sorted(p for p in root.glob(pattern) if p.is_dir())
    if len(matches) != 1:
        found = "nothing" if not matches else f"{len(matches)} folders"
        raise ReaderError(
            f"Expected one folder matching '{pattern}' in {root}, found {found}: the data do not "
            "have the expected layout (wrong or incomplete file?)."
        )
    return matches[0]


def _junk(path: Path) -> bool:
    """MacOS archive debris (``__MACOSX/``, ``._name``) that globs would otherwise pick up."""
    return "__MACOSX" in path.parts or path.name.startswith("._")


def sorted_glob(base: Path, pattern: str, order: str = "natural") -> list[Path]:
    """Files matching ``pattern`` under ``base``, sorted by relative path: ``natural`` (natsort, as most
    of the paper's lists) or ``lexicographic`` (Python's ``sorted``, where the paper used that); ``name``
    sorts by file name alone.
    """
    files = [p for p in base.glob(pattern) if p.is_file() and not _junk(p.relative_to(base))]
    if order == "lexicographic":
        return sorted(files, key=lambda p: p.relative_to(base).as_posix())
    if order == "name":  # torch-em's sorted() over files it first gathered into one folder (PNAS)
        return sorted(files, key=lambda p: (p.name, p.relative_to(base).as_posix()))
    return sorted(files, key=lambda p: natural_key(p.relative_to(base).as_posix()))


def read_array(path: Path, key: str | None = None) -> np.ndarray:
    """Read an image-like file (TIFF, PNG, BMP, JPEG, NPY, MAT) into a numpy array.

    Raises
    ------
    ReaderError
        The file is missing or cannot be decoded; the message names it.
    """
    suffix = path.suffix.lower()
    try:
        if suffix in (".tif", ".tiff"):
            import tifffile

            return np.asarray(tifffile.imread(path))
        if suffix == ".npy":
            return np.load(path, allow_pickle=False)
        if suffix == ".mat":
            from scipy.io import loadmat

            data = loadmat(path)
            return np.asarray(data[key or "inst_map"])
        import imageio.v3 as iio

        return np.asarray(iio.imread(path))
    except Exception as err:  # any decoder error means the same thing to the user
        raise ReaderError(f"Cannot read {path.name} ({path}): {type(err).__name__}: {err}") from err


def to_instances(labels: np.ndarray, mode: str = "instances") -> np.ndarray:
    """Convert a stored annotation into an instance label image.

    Modes: ``instances`` (already instance ids; negative "ignore" ids become background),
    ``negative-as-objects`` (each negative id becomes one more object, as the paper kept PlantSeg ovules' -1
    "unannotated" region as a label value), ``components`` (connected components of equal non-zero
    values, full connectivity, as skimage's ``label`` in the paper's code; binary masks merge touching
    objects), ``channel0-components`` (components of the first channel), ``rgb-colours`` (each distinct colour
    is one object, black is background), ``sum-components`` (components of the sum over the channel axis).
    """
    from skimage.measure import label as connected

    if mode == "instances":
        if labels.dtype.kind == "f":
            labels = np.rint(labels)
        if labels.dtype.kind not in "ub":
            labels = np.where(labels < 0, 0, labels).astype(np.uint32)  # negative ignore ids -> background
        return labels.astype(np.uint32) if labels.dtype.kind == "b" else labels
    if mode == "negative-as-objects":  # PlantSeg ovules' -1 "unannotated" id stays an object, as in the paper
        labels = np.rint(labels).astype(np.int64) if labels.dtype.kind == "f" else labels.astype(np.int64)
        negative = np.unique(labels[labels < 0])
        if negative.size:
            top = max(int(labels.max()), 0)
            lut = {int(v): top + 1 + i for i, v in enumerate(negative[::-1])}  # -1 -> max+1, -2 -> max+2, ...
            for value, new in lut.items():
                labels[labels == value] = new
        return labels.astype(np.uint32 if labels.max(initial=0) <= np.iinfo(np.uint32).max else np.uint64)
    if mode == "components":
        return connected(labels).astype(np.uint32)
    if mode == "channel0-components":
        return connected(labels[..., 0] if labels.ndim == 3 else labels).astype(np.uint32)
    if mode == "sum-components":
        if labels.ndim == 3:  # channel axis first (H, W large) or last
            # in the stored dtype, as torch-em's ``larray[0] + larray[1]`` (SRSA-Net/IHC TMA)
            labels = labels.sum(axis=0 if labels.shape[0] <= 4 else -1, dtype=labels.dtype)
        return connected(labels).astype(np.uint32)
    if mode == "rgb-colours":
        if labels.ndim == 2:
            return labels.astype(np.uint32)
        rgb = labels[..., :3].astype(np.uint32)
        code = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
        _, inverse = np.unique(code, return_inverse=True)
        inverse = inverse.reshape(code.shape).astype(np.uint32)  # then split each colour into components
        background = inverse[code == 0]
        if background.size:  # keep black as 0 and shift the colour ids so no object becomes 0
            zero = background[0]
            inverse = np.where(inverse < zero, inverse + 1, inverse)
            inverse[code == 0] = 0
        else:
            inverse += 1
        return connected(inverse).astype(np.uint32)
    raise ReaderError(f"Unknown label mode '{mode}'.")


def check_pair(image: np.ndarray, labels: np.ndarray, source: str) -> None:
    """Raise if an image and its labels differ in spatial shape (channels of the image aside)."""
    spatial = image.shape[: labels.ndim]
    if spatial != labels.shape and image.shape[-labels.ndim :] != labels.shape:
        raise ReaderError(f"Image {source} has shape {image.shape} but its labels have shape {labels.shape}.")
