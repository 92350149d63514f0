"""The prepared test split of a dataset: one HDF5 file, written once, read by every run.

Layout of ``<data_root>/<dataset_id>/prepared.h5``::

    /images/<image_id>   image, (H, W) or (H, W, C), dtype as stored by the source; (Z, Y, X) for 3D test sets
    /labels/<image_id>   instance labels, (H, W) or (Z, Y, X), unsigned integer, 0 = background
    attrs on /images/<image_id>: "meta" (JSON: source file, slice index, crop offsets, ...)
    root attrs: "dataset" (id), "format_version", "image_ids" (JSON list, the iteration order)

The file is written under a temporary name and renamed, so a crash never leaves a half-written cache.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..errors import InvalidInputError, UnknownIdError
from ..files import H5_GZIP_LEVEL, sha256_file

FORMAT_VERSION = 1


@dataclass
class Sample:
    """One benchmark image with its ground truth."""

    image_id: str
    image: np.ndarray
    labels: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)


def check_image_id(image_id: str) -> str:
    """Image ids name HDF5 datasets and files: no slashes, no leading dot, not empty."""
    if not image_id or "/" in image_id or "\\" in image_id or image_id.startswith("."):
        raise InvalidInputError(
            f"Invalid image id {image_id!r}: ids must be non-empty and contain no path separators."
        )
    return image_id


def write_prepared(path: str | os.PathLike, dataset_id: str, samples: Iterable[Sample]) -> int:
    """Write samples into a prepared HDF5 file atomically; return the number written.

    Raises
    ------
    ValueError
        If an image and its labels differ in spatial shape, an id repeats, or no sample is given.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    ids: list[str] = []
    try:
        with h5py.File(tmp, "w") as f:
            images, labels = f.create_group("images"), f.create_group("labels")
            for sample in samples:
                image_id = check_image_id(sample.image_id)
                if image_id in images:
                    raise InvalidInputError(f"Image id '{image_id}' appears twice in dataset '{dataset_id}'.")
                if (
                    sample.image.shape[: sample.labels.ndim] != sample.labels.shape
                ):  # (H, W[, C]) or (Z, Y, X)
                    raise InvalidInputError(
                        f"Image '{image_id}' of '{dataset_id}' has shape {sample.image.shape} but its labels "
                        f"have shape {sample.labels.shape}."
                    )
                lab = np.asarray(sample.labels)
                if lab.size and lab.min() < 0:
                    raise InvalidInputError(f"Labels of image '{image_id}' contain negative ids.")
                ds = images.create_dataset(
                    image_id, data=sample.image, compression="gzip", compression_opts=H5_GZIP_LEVEL
                )
                ds.attrs["meta"] = json.dumps(sample.meta, default=str)
                labels.create_dataset(
                    image_id, data=lab.astype(_label_dtype(lab)), compression="gzip", compression_opts=4
                )
                ids.append(image_id)
            if not ids:
                raise InvalidInputError(f"No test images were prepared for dataset '{dataset_id}'.")
            f.attrs["dataset"] = dataset_id
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["image_ids"] = json.dumps(ids)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return len(ids)


def _label_dtype(labels: np.ndarray) -> type:
    top = int(labels.max()) if labels.size else 0
    for dtype in (np.uint16, np.uint32, np.uint64):
        if top <= np.iinfo(dtype).max:
            return dtype
    raise ValueError("label ids exceed uint64")


class PreparedDataset:
    """Read access to a prepared HDF5 file; iterates :class:`Sample` in the stored order."""

    def __init__(self, path: str | os.PathLike, dataset_id: str | None = None) -> None:
        self.path = Path(path)
        try:
            with h5py.File(self.path, "r") as f:
                self.image_ids: list[str] = json.loads(f.attrs["image_ids"])
                self.dataset_id: str = str(f.attrs["dataset"])
        except (OSError, KeyError) as err:
            raise InvalidInputError(
                f"The prepared file {self.path} is unreadable or incomplete ({err}); prepare the dataset again."
            ) from err

    def __len__(self) -> int:
        return len(self.image_ids)

    def __iter__(self) -> Iterator[Sample]:
        with h5py.File(self.path, "r") as f:
            for image_id in self.image_ids:
                yield self._read(f, image_id)

    def get(self, image_id: str) -> Sample:
        """Read one sample by id."""
        with h5py.File(self.path, "r") as f:
            if image_id not in f["images"]:
                raise UnknownIdError(f"No image '{image_id}' in {self.path}.")
            return self._read(f, image_id)

    @staticmethod
    def _read(f: h5py.File, image_id: str) -> Sample:
        ds = f["images"][image_id]
        return Sample(image_id, ds[()], f["labels"][image_id][()], json.loads(ds.attrs.get("meta", "{}")))

    def fingerprint(self) -> str:
        """sha256 of the prepared file, for provenance in ``run.json``."""
        return sha256_file(self.path)
