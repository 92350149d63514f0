"""Export a prepared test split as plain TIFF files, so that any tool can segment it.

Layout written by :func:`export_dataset`::

    DIR/images/<image_id>.tif    the image exactly as the benchmark feeds it to a method (dtype and channels)
    DIR/labels/<image_id>.tif    its ground-truth instance labels

A tool writes its label images as ``PRED/<image_id>.tif`` (or ``.png``/``.npy``, or with a usual mask suffix)
and ``apgbench evaluate --dataset ID --predictions PRED --name TOOL`` scores them like any method.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .download import PARTIAL_SUFFIX


@dataclass
class ExportSummary:
    """What :func:`export_dataset` wrote."""

    dataset: str
    n_images: int
    images: Path
    labels: Path


def export_dataset(
    dataset, out_dir: str | os.PathLike, data_root: str | os.PathLike | None = None, *, force: bool = False
) -> ExportSummary:
    """Write a dataset's prepared test split as ``out_dir/images/<id>.tif`` + ``out_dir/labels/<id>.tif``.

    Parameters
    ----------
    dataset : str or DatasetConfig
        Dataset id (or config); it must be prepared (built-in datasets always are).
    out_dir : path
        Target folder; created if missing. Other files in it are left alone.
    data_root : path, optional
        Dataset cache root.
    force : bool
        Overwrite files of the same names; without it, existing files are an error and nothing is written.

    Returns
    -------
    ExportSummary

    Raises
    ------
    FileExistsError
        A target file exists and ``force`` is False (the message names it and how many others).
    DatasetNotPreparedError
        The dataset is not prepared (the message says which command prepares it).
    """
    import tifffile

    from . import load_dataset

    data = load_dataset(dataset, data_root)
    dataset_id = getattr(dataset, "id", dataset)
    out = Path(out_dir)
    images, labels = out / "images", out / "labels"
    targets = [folder / f"{image_id}.tif" for image_id in data.image_ids for folder in (images, labels)]
    existing = [path for path in targets if path.exists()]
    if existing and not force:
        others = f" and {len(existing) - 1} other file(s)" if len(existing) > 1 else ""
        raise FileExistsError(
            f"{existing[0]}{others} already exist: pass --force to overwrite them, or choose another folder."
        )
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    n = 0
    for sample in data:
        _write_tiff(tifffile, images / f"{sample.image_id}.tif", sample.image)
        _write_tiff(tifffile, labels / f"{sample.image_id}.tif", sample.labels)
        n += 1
    return ExportSummary(str(dataset_id), n, images, labels)


def _write_tiff(tifffile, path: Path, array: np.ndarray) -> None:
    """Write atomically, so an interrupted export never leaves a truncated TIFF under its final name."""
    tmp = path.with_name(path.name + PARTIAL_SUFFIX)
    # Channels-last images stay one page with interleaved samples (two-channel ones too), so readers see (H, W, C).
    options = {"planarconfig": "contig"} if array.ndim == 3 else {}
    photometric = "rgb" if array.ndim == 3 and array.shape[-1] == 3 else "minisblack"
    try:
        tifffile.imwrite(tmp, np.ascontiguousarray(array), photometric=photometric, **options)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
