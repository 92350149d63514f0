"""Score label images produced outside apgbench, and store them like any other method's results."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import InvalidInputError, NotFoundError
from .label_files import Candidates, candidates, read_label_file
from .methods.base import check_labels
from .metrics import score_image
from .plan import plan_external
from .results import RecordWriter, dataset_mean, utc_now
from .runner import RunSummary


def find_prediction(folder: Path, image_id: str) -> Path | None:
    """The file in ``folder`` holding the prediction for ``image_id`` by :mod:`apgbench.label_files`'s rules,
    or None (ambiguity is checked by :func:`evaluate_predictions`, which sees the images).
    """
    files = candidates(folder, [image_id])[image_id].files
    return files[0] if files else None


def _pick(
    image_id: str, found: Candidates, image: np.ndarray, ndim: int = 2
) -> tuple[Path | None, np.ndarray | None, str | None]:
    """(file, labels, why none) for one image: the dataset's own input image is never taken as a prediction.

    Raises
    ------
    ValueError
        If several files match and hold different label images (names them).
    """
    read: list[tuple[Path, np.ndarray]] = []
    why = None
    for path in found.files:
        try:
            labels = read_label_file(path, ndim)
        except (OSError, ValueError) as err:
            why = str(err)
            continue
        if labels.shape == np.squeeze(image).shape and np.array_equal(labels, np.squeeze(image)):
            why = f"{path.name} is the dataset's input image, not a prediction"
            continue
        read.append((path, labels))
    if len(read) > 1 and any(not np.array_equal(read[0][1], labels) for _, labels in read[1:]):
        names = ", ".join(path.name for path, _ in read)
        raise InvalidInputError(
            f"Several files match image '{image_id}' and differ: {names}; keep one of them "
            "(naming rules: apgbench.label_files)."
        )
    if read:
        return read[0][0], read[0][1], None
    return None, None, why or f"no prediction file for '{image_id}'"


def read_label_image(path: Path, ndim: int = 2) -> np.ndarray:
    """Read a label image from TIFF, PNG or NPY; it must have ``ndim`` axes (3: a volume) and integer type."""
    return read_label_file(path, ndim)


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

    Files are matched to image ids by the naming rules of :mod:`apgbench.label_files` (Cellpose's
    ``_cp_masks`` and ``_seg.npy``, ``_masks``, ``_label(s)``, ..., or the plain ``<image_id>.tif``); a file
    that is the dataset's own input image is never scored. An image without a readable prediction of the
    right shape is recorded as failed and counts as 0 in the mean, so missing outputs stay visible.

    Raises
    ------
    FileNotFoundError
        If the folder does not exist.
    ValueError
        If ``name`` is not a valid id or is a registered method's id, if a record of that name was made by
        ``apgbench run`` (never replaced, ``force`` or not) or from another folder (unless ``force``), if
        several differing files match one image, or if no file in the folder matches any image id.
    """
    folder = Path(predictions)
    if not folder.is_dir():
        raise NotFoundError(f"Predictions folder {folder} does not exist.")
    plan = plan_external(dataset, name, folder, results_root=results_root, data_root=data_root)
    data, directory = plan.data, plan.directory
    found = candidates(folder, data.image_ids)
    if not any(c.files for c in found.values()):
        raise InvalidInputError(
            f"No file in {folder} matches an image id of '{dataset}' (e.g. "
            f"'{data.image_ids[0]}.tif'; naming rules: apgbench.label_files)."
        )
    picked = {
        sample.image_id: _pick(sample.image_id, found[sample.image_id], sample.image, sample.labels.ndim)
        for sample in data
    }  # ndim 3: label volumes for 3D test sets
    if not any(path is not None for path, _, _ in picked.values()):
        reasons = sorted({why for _, _, why in picked.values() if why})
        raise InvalidInputError(f"No usable prediction in {folder} for '{dataset}': {reasons[0]}.")

    n_failed = 0
    with RecordWriter(directory) as writer:
        previous = writer.previous_info()
        if previous and not (previous.get("method_info") or {}).get("external"):
            raise InvalidInputError(
                f"{directory} holds results of `apgbench run` for method '{name}'; evaluate "
                "never replaces them. Choose another --name."
            )
        if (
            previous
            and previous.get("params", {}).get("predictions") != plan.params["predictions"]
            and not force
        ):
            raise InvalidInputError(
                f"Results named '{name}' on '{dataset}' come from another folder; use --force "
                "to replace them."
            )
        writer.clear()
        info = plan.run_info(device="n/a", method_info={"external": True})
        for sample in data:
            row = {
                "dataset": dataset,
                "method": name,
                "run_key": plan.run_key,
                "image_id": sample.image_id,
                "seconds": None,
                "peak_mem_mb": None,
                "error": None,
            }
            path, labels, why = picked[sample.image_id]
            try:
                if path is None:
                    raise FileNotFoundError(why)
                labels = check_labels(labels, sample.labels.shape, name)
            except (OSError, ValueError, TypeError) as err:
                n_failed += 1
                row.update(error=str(err), n_true=int(np.count_nonzero(np.unique(sample.labels))), n_pred=0)
                writer.add(sample.image_id, None, row)
                continue
            row.update(score_image(sample.labels, labels))
            writer.add(sample.image_id, labels, row)
        info.finished = utc_now()  # finalize sets ``complete``: every image has a row
        scores = writer.finalize(info, image_ids=data.image_ids)
    return RunSummary(dataset, name, directory, len(data), len(data), 0, n_failed, dataset_mean(scores))
