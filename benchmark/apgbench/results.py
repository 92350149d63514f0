"""The results store: one self-contained record per (method, dataset, parameters).

Layout under the results root::

    <method>/<dataset>/<run_key>/
        predictions.h5   /labels/<image_id>: uint32 label image per scored image
        scores.csv       one row per image (columns: SCORE_COLUMNS)
        run.json         RunInfo: params, library versions, device, dataset fingerprint, timings
        .parts/          per-image results of a run in progress (consolidated when it finishes)

``run_key`` is ``default`` for a method's default parameters and ``p-<hash>`` otherwise, so runs with
different parameters never overwrite each other. Every file is written under a temporary name and renamed,
and each image's result is committed on its own as soon as it is produced: an interrupted run loses at most
the image it was working on, and the next run resumes from there.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
from filelock import FileLock, Timeout
from pydantic import BaseModel, ConfigDict

THRESHOLD_COLUMNS = [f"sa{int(round(t * 100))}" for t in np.arange(0.5, 0.96, 0.05)]
SCORE_COLUMNS = ["dataset", "method", "run_key", "image_id", "msa", *THRESHOLD_COLUMNS,
                 "n_true", "n_pred", "seconds", "peak_mem_mb", "error"]
PARTS = ".parts"


class RecordBusyError(RuntimeError):
    """Another process is writing the same record."""


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
    started: str
    finished: str | None = None
    n_images: int = 0
    n_scored: int = 0
    n_failed: int = 0
    complete: bool = False
    seconds_total: float = 0.0


def now() -> str:
    """UTC timestamp in ISO format."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def git_revision() -> str | None:
    """The apgbench source checkout's git revision, if it is one."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5, check=False)
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


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


class RecordWriter:
    """Writes one record; holds a lock so two workers never write the same record at once.

    Parameters
    ----------
    directory : path
        The record folder (see :func:`record_dir`).
    """

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)
        self.parts = self.directory / PARTS
        self.parts.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(self.directory / ".lock"))

    def __enter__(self) -> RecordWriter:
        try:
            self._lock.acquire(timeout=0)
        except Timeout as err:
            raise RecordBusyError(f"Another process is writing {self.directory}; wait for it to finish.") from err
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    def clear(self) -> None:
        """Delete all results of this record (``--force``)."""
        for name in ("predictions.h5", "scores.csv", "run.json"):
            (self.directory / name).unlink(missing_ok=True)
        shutil.rmtree(self.parts, ignore_errors=True)
        self.parts.mkdir(parents=True, exist_ok=True)

    def previous_info(self) -> dict[str, Any] | None:
        """The stored ``run.json`` of this record, if any."""
        path = self.directory / "run.json"
        return json.loads(path.read_text()) if path.exists() else None

    def done_ids(self) -> set[str]:
        """Image ids already scored (consolidated or in parts)."""
        done = set(read_scores(self.directory)["image_id"].astype(str)) if self._has_scores() else set()
        done.update(p.stem for p in self.parts.glob("*.npz"))
        return done

    def _has_scores(self) -> bool:
        return (self.directory / "scores.csv").exists()

    def add(self, image_id: str, labels: np.ndarray | None, row: dict[str, Any]) -> None:
        """Commit one image's prediction and score row (atomic: a part file renamed into place)."""
        tmp = self.parts / f".{image_id}.{os.getpid()}.tmp.npz"
        payload = {"row": np.array(json.dumps(row, default=_json_default))}
        if labels is not None:
            payload["labels"] = np.asarray(labels, dtype=np.uint32)
        np.savez_compressed(tmp, **payload)
        os.replace(tmp, self.parts / f"{image_id}.npz")

    def finalize(self, info: RunInfo) -> pd.DataFrame:
        """Merge parts into ``predictions.h5`` and ``scores.csv``, write ``run.json``, drop the parts."""
        rows = read_scores(self.directory).to_dict("records") if self._has_scores() else []
        new: dict[str, np.ndarray] = {}
        for part in sorted(self.parts.glob("*.npz")):
            with np.load(part) as data:
                rows = [r for r in rows if str(r["image_id"]) != part.stem]
                rows.append(json.loads(str(data["row"])))
                if "labels" in data:
                    new[part.stem] = data["labels"]
        scores = pd.DataFrame(rows, columns=SCORE_COLUMNS)
        if new:
            self._write_predictions(new)
        tmp_csv = self.directory / f".scores.csv.{os.getpid()}.tmp"
        scores.to_csv(tmp_csv, index=False)
        os.replace(tmp_csv, self.directory / "scores.csv")
        info.n_scored = int(scores["error"].isna().sum())
        info.n_failed = int(scores["error"].notna().sum())
        _atomic_write_bytes(self.directory / "run.json", info.model_dump_json(indent=2).encode())
        shutil.rmtree(self.parts, ignore_errors=True)
        return scores

    def _write_predictions(self, new: dict[str, np.ndarray]) -> None:
        final = self.directory / "predictions.h5"
        tmp = self.directory / f".predictions.h5.{os.getpid()}.tmp"
        with h5py.File(tmp, "w") as out:
            group = out.create_group("labels")
            if final.exists():
                with h5py.File(final, "r") as old:
                    for key in old["labels"]:
                        if key not in new:
                            old.copy(old["labels"][key], group, name=key)
            for key, labels in new.items():
                group.create_dataset(key, data=labels, compression="gzip", compression_opts=4)
        os.replace(tmp, final)


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
        raise ValueError(f"{path} is corrupted ({err}); re-run with --force to recompute it.") from err
    missing = set(SCORE_COLUMNS) - set(frame.columns)
    if missing:
        raise ValueError(f"{path} lacks columns {sorted(missing)}; re-run with --force to recompute it.")
    return frame


def read_prediction(directory: str | os.PathLike, image_id: str) -> np.ndarray:
    """One stored label image of a record."""
    with h5py.File(Path(directory) / "predictions.h5", "r") as f:
        return f["labels"][image_id][()]


def iter_records(results_root: str | os.PathLike) -> Iterable[Path]:
    """Every record folder under the root that has a ``run.json``, in sorted order."""
    root = Path(results_root)
    return sorted(p.parent for p in root.glob("*/*/*/run.json"))


def record_label(method: str, key: str) -> str:
    """How a record is named in tables: the method id, plus the run key for non-default parameters."""
    return method if key == "default" else f"{method}[{key}]"


def load_scores(results_root: str | os.PathLike) -> pd.DataFrame:
    """All per-image scores under a results root, with ``domain`` and ``label`` columns added.

    Returns an empty frame with the right columns when nothing is stored yet.
    """
    frames = []
    for directory in iter_records(results_root):
        if not (directory / "scores.csv").exists():
            continue
        info = json.loads((directory / "run.json").read_text())
        frame = read_scores(directory)
        frame["domain"] = info.get("domain")
        frame["label"] = record_label(info["method"], info["run_key"])
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=[*SCORE_COLUMNS, "domain", "label"])
    return pd.concat(frames, ignore_index=True)
