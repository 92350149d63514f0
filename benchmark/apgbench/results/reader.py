"""Reading records: scores, predictions, integrity checks, and all scores under a results root."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from filelock import FileLock

from .schema import JOURNAL, SCORE_COLUMNS, CorruptRecordError, RecordMismatchError, read_scores
from .writer import check_record, recover


def read_prediction(directory: str | os.PathLike, image_id: str) -> np.ndarray:
    """One stored label image of a record."""
    with h5py.File(Path(directory) / "predictions.h5", "r") as f:
        return f["labels"][image_id][()]


def iter_records(results_root: str | os.PathLike) -> Iterable[Path]:
    """Every record folder under the root that has a ``run.json``, in sorted order."""
    root = Path(results_root)
    return sorted(p.parent for p in root.glob("*/*/*/run.json") if not p.parts[-4].startswith("."))


def record_label(method: str, key: str, tag: str | None = None) -> str:
    """How a record is named in tables: the method id, plus its tag or run key for non-default parameters."""
    return method if key == "default" else f"{method}[{tag or key}]"


def verify_record(directory: str | os.PathLike, *, predictions: bool = False) -> list[str]:
    """Integrity problems of a record as a reader sees it.

    A mismatch may be a consolidation in progress: the check is repeated under the record lock, after
    finishing any consolidation that a killed process left half-way.
    """
    directory = Path(directory)
    if not (directory / JOURNAL).exists() and not check_record(directory, predictions=predictions):
        return []
    with FileLock(str(directory / ".lock"), timeout=600):
        recover(directory)
        return check_record(directory, predictions=predictions)


def load_scores(
    results_root: str | os.PathLike, *, fingerprints: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """All per-image scores under a results root, with ``domain`` and ``label`` columns added.

    Parameters
    ----------
    results_root : path
        The results store.
    fingerprints : mapping, optional
        ``dataset id -> fingerprint prefix``: for a dataset whose records were computed on different
        versions of its prepared data, keep only the records of this one.

    Returns an empty frame with the right columns when nothing is stored yet.

    Raises
    ------
    CorruptRecordError
        If a record's scores fail their integrity check (``apgbench run`` recomputes them).
    RecordMismatchError
        If records of one dataset come from different dataset fingerprints and ``fingerprints`` does not
        say which to use.
    """
    frames, seen = [], {}
    for directory in iter_records(results_root):
        if not (directory / "scores.csv").exists():
            continue
        if problems := verify_record(directory):
            raise CorruptRecordError(f"{directory}: {'; '.join(problems)}. Run it again to recompute it.")
        info = json.loads((directory / "run.json").read_text())
        fingerprint = info.get("dataset_fingerprint") or ""
        wanted = (fingerprints or {}).get(info["dataset"])
        if wanted is not None and not fingerprint.startswith(wanted):
            continue
        seen.setdefault(info["dataset"], {}).setdefault(fingerprint, []).append(directory)
        frame = read_scores(directory)
        frame["domain"] = info.get("domain")
        frame["label"] = record_label(info["method"], info["run_key"], info.get("tag"))
        frames.append(frame)
    mixed = {d: f for d, f in seen.items() if len(f) > 1}
    if mixed:
        lines = [
            f"{d}: "
            + "; ".join(
                f"{fp[:12]} in {', '.join(p.parent.parent.name for p in dirs)}" for fp, dirs in f.items()
            )
            for d, f in mixed.items()
        ]
        raise RecordMismatchError(
            "Records of the same dataset were computed on different prepared data ("
            + " | ".join(lines)
            + "). Recompute the stale ones with `apgbench run --force`, or choose a fingerprint per dataset."
        )
    if not frames:
        return pd.DataFrame(columns=[*SCORE_COLUMNS, "domain", "label"])
    return pd.concat(frames, ignore_index=True)
