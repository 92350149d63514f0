"""Score label images produced outside apgbench, and store them like any other method's results."""

from __future__ import annotations

import os
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import tifffile

from . import __version__
from .config import ID_PATTERN
from .config import results_root as _results_root
from .datasets import get_dataset_config, load_dataset
from .methods.base import check_labels
from .metrics import score_image
from .results import RecordWriter, RunInfo, git_revision, now, record_dir
from .runner import RunSummary

SUFFIXES = (".tif", ".tiff", ".png", ".npy")
# Names that other tools append to the image name of a mask file (Cellpose, StarDist, Fiji exports).
STEM_TAILS = ("", "_label", "_labels", "_mask", "_masks", "_cp_masks", "_seg", "_pred", "_prediction")


def find_prediction(folder: Path, image_id: str) -> Path | None:
    """The file in ``folder`` holding the prediction for ``image_id``, or None."""
    for tail in STEM_TAILS:
        for suffix in SUFFIXES:
            candidate = folder / f"{image_id}{tail}{suffix}"
            if candidate.is_file():
                return candidate
    return None


def read_label_image(path: Path, ndim: int = 2) -> np.ndarray:
    """Read a label image from TIFF, PNG or NPY; it must have ``ndim`` axes (3: a volume) and integer type."""
    if path.suffix == ".npy":
        labels = np.load(path, allow_pickle=False)
    elif path.suffix in (".tif", ".tiff"):
        labels = tifffile.imread(path)
    else:
        labels = iio.imread(path)
    labels = np.squeeze(labels) if labels.ndim > ndim else labels
    if labels.ndim != ndim:
        raise ValueError(f"{path.name} is not a {ndim}D label image (shape {labels.shape}).")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{path.name} has dtype {labels.dtype}; label images must be integer.")
    return labels


def evaluate_predictions(
    dataset: str,
    predictions: str | os.PathLike,
    name: str,
    *,
    results_root: str | os.PathLike | None = None,
    data_root: str | os.PathLike | None = None,
    force: bool = False,
) -> RunSummary:
    """Score a folder of label images against a dataset's ground truth and store them as method ``name``.

    Files are matched to images by name: ``<image_id>.tif`` (also ``.tiff``, ``.png``, ``.npy``, and the
    usual mask suffixes such as ``_masks``). An image without a readable prediction of the right shape is
    recorded as failed, so missing outputs stay visible in the report.

    Raises
    ------
    FileNotFoundError
        If the folder does not exist.
    ValueError
        If ``name`` is not a valid method id, or no file in the folder matches any image id.
    """
    folder = Path(predictions)
    if not folder.is_dir():
        raise FileNotFoundError(f"Predictions folder {folder} does not exist.")
    if not ID_PATTERN.match(name):
        raise ValueError(f"Method name '{name}' must be kebab-case (lower-case letters, digits, '-').")
    config = get_dataset_config(dataset)
    data = load_dataset(config, data_root)
    found = {image_id: find_prediction(folder, image_id) for image_id in data.image_ids}
    if not any(found.values()):
        raise ValueError(f"No file in {folder} matches an image id of '{dataset}' (e.g. '{data.image_ids[0]}.tif').")

    directory = record_dir(_results_root(results_root), name, dataset, "default")
    n_failed = 0
    with RecordWriter(directory) as writer:
        previous = writer.previous_info()
        if previous and previous.get("params", {}).get("predictions") != str(folder.resolve()) and not force:
            raise ValueError(f"Results named '{name}' on '{dataset}' come from another folder; use --force to replace them.")
        writer.clear()
        info = RunInfo(dataset=dataset, domain=config.domain, method=name, run_key="default",
                       params={"predictions": str(folder.resolve())}, method_info={"external": True},
                       dataset_fingerprint=data.fingerprint(), apgbench_version=__version__,
                       git_revision=git_revision(), device="n/a", started=now(), n_images=len(data))
        for sample in data:
            row = {"dataset": dataset, "method": name, "run_key": "default", "image_id": sample.image_id,
                   "seconds": None, "peak_mem_mb": None, "error": None}
            path = found[sample.image_id]
            try:
                if path is None:
                    raise FileNotFoundError(f"no prediction file for '{sample.image_id}'")
                labels = check_labels(read_label_image(path, sample.labels.ndim), sample.labels.shape, name)
            except (OSError, ValueError, TypeError) as err:
                n_failed += 1
                row.update(error=str(err), n_true=int(np.count_nonzero(np.unique(sample.labels))), n_pred=0)
                writer.add(sample.image_id, None, row)
                continue
            row.update(score_image(sample.labels, labels))
            writer.add(sample.image_id, labels, row)
        info.finished, info.complete = now(), True
        scores = writer.finalize(info)
    valid = scores[scores["error"].isna() & (scores["n_true"] > 0)]
    return RunSummary(dataset, name, directory, len(data), len(data), 0, n_failed,
                      float(valid["msa"].mean()) if len(valid) else None)
