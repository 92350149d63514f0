"""Record schema: score columns, run manifest (RunInfo), errors, keys and small file helpers."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from ..errors import InvalidInputError, UnavailableError
from ..files import atomic_write, sha256_file, write_synced  # noqa: F401 - re-exported
from ..metrics import DEFAULT_THRESHOLDS, SCORE_KEYS, threshold_key

#: One column per IoU threshold of the metric (``sa50`` ... ``sa95``), named by the metric itself.
THRESHOLD_COLUMNS = [threshold_key(t) for t in DEFAULT_THRESHOLDS]
#: Columns of ``scores.csv``: the record and image, every value :func:`~apgbench.metrics.score_image` returns,
#: then time, memory and the error of a failed image.
SCORE_COLUMNS = ["dataset", "method", "run_key", "image_id", *SCORE_KEYS, "seconds", "peak_mem_mb", "error"]
#: Columns added after records were first written: a ``scores.csv`` without them is read with them empty.
LATER_COLUMNS = ("tp50",)
PARTS, LOCKS, JOURNAL = ".parts", ".locks", ".commit.json"
#: Seconds to wait for a record's lock, which others hold only to check, consolidate or clear the record:
#: long enough for the consolidation of a large record on a slow shared file system.
LOCK_WAIT_S = 600.0
RESULT_FILES = ("predictions.h5", "scores.csv")
PROVENANCE_KEYS = ("dataset_fingerprint", "method_info", "params")


class RecordBusyError(UnavailableError):
    """Another process is writing the same record (or the same images of it)."""


class RecordMismatchError(InvalidInputError):
    """Stored results were computed under a different provenance than the one asked for."""


class CorruptRecordError(InvalidInputError):
    """A stored file of a record fails its integrity check."""


class RecordRepairedWarning(UserWarning):
    """A corrupted file was found and deleted; its images are recomputed."""


class StoreWriteError(UnavailableError):
    """The results store cannot be written (disk full, read-only, no permission); nothing stored was changed."""


#: errno values that mean "this folder cannot take more data", not a bug: reported as one sentence.
UNWRITABLE_ERRNOS = frozenset(
    getattr(errno, name)
    for name in ("ENOSPC", "EDQUOT", "EROFS", "EACCES", "EPERM", "EFBIG")
    if hasattr(errno, name)
)


def unwritable_message(err: OSError, folder: str | os.PathLike) -> str:
    """One sentence saying why ``folder`` cannot be written and what to do."""
    reasons: dict[int | None, str] = {
        errno.ENOSPC: "the disk is full",
        errno.EROFS: "it is on a read-only file system",
    }
    why = reasons.get(
        err.errno,
        "it is not writable" if err.errno in (errno.EACCES, errno.EPERM) else (err.strerror or str(err)),
    )
    if getattr(errno, "EDQUOT", None) == err.errno:
        why = "the disk quota is exhausted"
    return (
        f"Cannot write to {folder}: {why} ({err.strerror or err}); files stored there before are unchanged. "
        "Free some space, or write elsewhere (--results-root, --out)."
    )


def store_write_errors(folder: str | os.PathLike):
    """Context manager turning disk-full and read-only errors raised inside into :class:`StoreWriteError`."""
    return _StoreWriteErrors(folder)


class _StoreWriteErrors:
    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = folder

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, err, tb) -> Literal[False]:
        if isinstance(err, OSError) and err.errno in UNWRITABLE_ERRNOS:
            raise StoreWriteError(unwritable_message(err, self.folder)) from err
        return False


class RunInfo(BaseModel):
    """Provenance and summary of one record, stored as ``run.json``."""

    model_config = ConfigDict(extra="allow")

    dataset: str
    domain: str
    method: str
    run_key: str
    params: dict[str, Any]
    method_info: dict[str, Any] = {}
    dataset_fingerprint: str | None = None
    apgbench_version: str
    git_revision: str | None = None
    python: str = sys.version.split()[0]
    platform: str = platform.platform()
    device: str = "cpu"
    hardware: dict[str, Any] = {}
    workers: list[dict[str, Any]] = []
    started: str
    finished: str | None = None
    n_images: int = 0
    n_scored: int = 0
    n_failed: int = 0
    complete: bool = False
    seconds_total: float = 0.0
    files: dict[str, dict[str, Any]] = {}
    repairs: list[str] = []


def utc_now() -> str:
    """The current UTC time in ISO format, to the second (``2026-01-31T12:00:00+00:00``): every timestamp
    apgbench writes (``run.json``, submissions, status files, reports).
    """
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


now = utc_now  # the name before utc_now; kept for existing callers


def git_revision() -> str | None:
    """The apgbench source checkout's git revision, if it is one."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def run_key(params: dict[str, Any], default_params: dict[str, Any]) -> str:
    """``default`` when ``params`` equal the defaults, else ``p-`` + a short hash of the non-default values."""
    changed = {k: v for k, v in params.items() if default_params.get(k, object()) != v}
    if not changed:
        return "default"
    payload = json.dumps(changed, sort_keys=True, default=str)
    return "p-" + hashlib.sha256(payload.encode()).hexdigest()[:10]


def record_dir(results_root: str | os.PathLike, method: str, dataset: str, key: str) -> Path:
    """Folder of one record."""
    return Path(results_root) / method / dataset / key


def file_digest(path: Path) -> dict[str, Any]:
    """Size and sha256 of a file."""
    return {"size": Path(path).stat().st_size, "sha256": sha256_file(path)}


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    return str(value)


def read_scores(directory: str | os.PathLike) -> pd.DataFrame:
    """Read one record's ``scores.csv`` with stable dtypes."""
    path = Path(directory) / "scores.csv"
    try:
        frame = pd.read_csv(path, dtype={"image_id": str, "error": object, "run_key": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise CorruptRecordError(f"{path} is corrupted ({err}); run it again to recompute it.") from err
    missing = set(SCORE_COLUMNS) - set(frame.columns) - set(LATER_COLUMNS)
    for column in LATER_COLUMNS:
        if column not in frame.columns:
            frame.insert(SCORE_COLUMNS.index(column), column, pd.NA)
    if missing:
        raise CorruptRecordError(f"{path} lacks columns {sorted(missing)}; run it again to recompute it.")
    return frame


def dataset_mean(scores: pd.DataFrame, n_images: int | None = None) -> float | None:
    """A record's mean mSA as the report computes it: over all images with non-empty ground truth, an image
    that failed (or, given ``n_images``, was never scored) counting as 0; None when there is none.

    Images never scored whose ground truth is unknown count as non-empty, so a shortfall never helps.
    """
    n_true = pd.to_numeric(scores["n_true"], errors="coerce")
    counted = scores[~(n_true == 0)]
    total = len(counted) + max(0, (n_images or 0) - len(scores))
    if not total:
        return None
    return float(valid_scores(scores)["msa"].sum()) / total


def valid_scores(scores: pd.DataFrame) -> pd.DataFrame:
    """The rows of images that were scored: no error, and ground truth with at least one object.

    The paper's means leave out images with empty ground truth; failed images are counted separately
    (as 0 in the report's default view, see :func:`dataset_mean`).
    """
    n_true = pd.to_numeric(scores["n_true"], errors="coerce")
    return scores[scores["error"].isna() & (n_true > 0)]
