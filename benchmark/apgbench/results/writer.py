"""Writing one record: worker claims, atomic per-image parts, consolidation, recovery."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import warnings
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
from filelock import FileLock, Timeout
from pydantic import ValidationError

from ..files import H5_GZIP_LEVEL
from .schema import (
    JOURNAL,
    LOCK_WAIT_S,
    LOCKS,
    PARTS,
    PROVENANCE_KEYS,
    RESULT_FILES,
    SCORE_COLUMNS,
    CorruptRecordError,
    RecordBusyError,
    RecordMismatchError,
    RecordRepairedWarning,
    RunInfo,
    _json_default,
    atomic_write,
    file_digest,
    read_scores,
    store_write_errors,
    write_synced,
)


def _claim_range(name: str) -> tuple[float, float]:
    if name == "all":
        return 0, float("inf")
    _, start, stop = name.split("-")
    return int(start), int(stop)


def held_claims(directory: str | os.PathLike, exclude: str | None = None) -> list[str]:
    """Names of the worker claims on a record that a live process holds (a killed one holds none)."""
    held = []
    for path in sorted((Path(directory) / LOCKS).glob("*.lock")):
        if path.stem == exclude:
            continue
        probe = FileLock(str(path))
        try:
            probe.acquire(timeout=0)
        except Timeout:
            held.append(path.stem)
        else:
            probe.release()
    return held


def recover(directory: str | os.PathLike) -> bool:
    """Finish a consolidation that was killed half-way (caller holds the record lock); True if one was."""
    directory = Path(directory)
    journal = directory / JOURNAL
    found = journal.exists()
    if found:
        try:
            entry = json.loads(journal.read_text())
            pairs, parts = [(str(a), str(b)) for a, b in entry["replace"]], [str(n) for n in entry["parts"]]
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
            raise CorruptRecordError(f"{journal} is unreadable ({type(err).__name__}: {err})") from err
        for tmp, final in pairs:
            if (directory / tmp).exists():
                os.replace(directory / tmp, directory / final)
        for name in parts:
            (directory / PARTS / name).unlink(missing_ok=True)
        journal.unlink()
    for stale in directory.glob(".*.tmp"):  # consolidation leftovers: only a lock holder writes these
        stale.unlink(missing_ok=True)
    return found


def _drop_journal(directory: Path) -> str:
    """Delete an unreadable journal and the files it may have named (caller holds the record lock).

    Safe: the parts a consolidation merges are deleted only after all its renames, so whatever the journal
    named is still in the parts; :func:`check_record` then catches a half-renamed set of files.
    """
    (directory / JOURNAL).unlink(missing_ok=True)
    for stale in directory.glob(".*.tmp"):
        stale.unlink(missing_ok=True)
    return f"{directory / JOURNAL} was unreadable"


def check_record(directory: str | os.PathLike, *, predictions: bool = True) -> list[str]:
    """Integrity problems of a record's consolidated files (empty list: sound).

    ``scores.csv`` and (if ``predictions``) ``predictions.h5`` must match the size and sha256 that
    ``run.json`` recorded for them; results without a readable ``run.json`` are orphans.
    """
    directory = Path(directory)
    present = [name for name in RESULT_FILES if (directory / name).exists()]
    path = directory / "run.json"
    if not path.exists():
        return [f"{name} has no run.json" for name in present]
    try:
        info = RunInfo.model_validate_json(path.read_text())
    except (ValidationError, ValueError, UnicodeDecodeError) as err:
        return [f"run.json is unreadable ({str(err).splitlines()[0]})"]
    problems = []
    for name, expected in info.files.items():
        if name == "predictions.h5" and not predictions:
            continue
        if not (directory / name).exists():
            problems.append(f"{name} is missing")
        elif file_digest(directory / name) != expected:
            problems.append(f"{name} is truncated or altered (size/sha256 differ from run.json)")
    problems += [f"{name} is not listed in run.json" for name in present if name not in info.files]
    return problems


def _read_part(path: Path) -> tuple[dict[str, Any], np.ndarray | None, dict[str, Any]]:
    """(row, labels or None, meta) of a part; raises CorruptRecordError if it fails its checks."""
    try:
        with (
            open(path, "rb") as handle,
            np.load(handle, allow_pickle=False) as data,
        ):  # closes on bad zips too
            row = json.loads(str(data["row"]))
            meta = json.loads(str(data["meta"])) if "meta" in data else {}
            labels = data.get("labels")
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        raise CorruptRecordError(f"part {path.name} is unreadable ({type(err).__name__}: {err})") from err
    if row.get("image_id") != path.stem:
        raise CorruptRecordError(f"part {path.name} holds image {row.get('image_id')!r}")
    return row, labels, meta


def _differences(stored: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Provenance keys whose values differ (a key absent on either side is not compared)."""
    out = []
    for key in PROVENANCE_KEYS:
        old, new = stored.get(key), current.get(key)
        if old is None or new is None:
            continue
        if json.dumps(old, sort_keys=True, default=str) != json.dumps(new, sort_keys=True, default=str):
            out.append(f"{key}: stored {_short(old)}, now {_short(new)}")
    return out


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text[:12] + "..." if isinstance(value, str) and len(text) > 16 else text[:120]


class RecordWriter:
    """Writes one record; concurrent workers each claim their images, so they never block or corrupt it.

    Parameters
    ----------
    directory : path
        The record folder (see :func:`record_dir`).
    shard : (int, int), optional
        The index range ``[start, stop)`` of the images this worker writes; ``None`` claims them all. Claims
        that overlap raise :class:`RecordBusyError` in the later worker.
    wait_s : float
        How long to wait for the record lock, which others hold only to check or consolidate.
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        *,
        shard: tuple[int, int] | None = None,
        wait_s: float = LOCK_WAIT_S,
    ) -> None:
        self.directory = Path(directory)
        self.parts = self.directory / PARTS
        with store_write_errors(self.directory):
            self.parts.mkdir(parents=True, exist_ok=True)
            (self.directory / LOCKS).mkdir(exist_ok=True)
        self.claim = "all" if shard is None else f"shard-{shard[0]:07d}-{shard[1]:07d}"
        self.repairs: list[str] = []
        self.provenance: dict[str, Any] = {}
        self.worker: dict[str, Any] = {}
        self._wait_s = wait_s
        self._lock = FileLock(str(self.directory / ".lock"))
        self._claim = FileLock(str(self.directory / LOCKS / f"{self.claim}.lock"))

    def _locked(self):
        """The record lock, as a context manager that releases it once on exit."""
        try:
            return self._lock.acquire(timeout=self._wait_s)
        except Timeout as err:
            raise RecordBusyError(f"{self.directory} stayed locked for {self._wait_s:.0f} s.") from err

    def __enter__(self) -> RecordWriter:
        with self._locked():
            try:
                self._claim.acquire(timeout=0)
            except Timeout as err:
                raise RecordBusyError(
                    f"Another process is writing {self.directory}; wait for it to finish."
                ) from err
            try:
                others = held_claims(self.directory, exclude=self.claim)
                mine = _claim_range(self.claim)
                clash = [c for c in others if _claim_range(c)[0] < mine[1] and mine[0] < _claim_range(c)[1]]
                if clash:
                    raise RecordBusyError(f"Workers {clash} are writing the same images of {self.directory}.")
                try:
                    recover(self.directory)
                except CorruptRecordError as err:
                    self._repair([str(err)], [])
                    _drop_journal(self.directory)
                if not others:  # nobody else writes parts: temporary ones are leftovers of a killed run
                    for stale in self.parts.glob(".*.tmp*"):
                        stale.unlink(missing_ok=True)
                self._repair([f"{p}" for p in check_record(self.directory)], (*RESULT_FILES, "run.json"))
            except BaseException:
                self._claim.release()
                raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            with contextlib.suppress(OSError, RecordBusyError):  # tidying only: a left folder is harmless
                if not any(self.parts.iterdir()):
                    with self._locked():
                        if not held_claims(self.directory, exclude=self.claim):  # nobody else writes parts
                            self.parts.rmdir()
        finally:
            self._claim.release()

    def _repair(self, problems: list[str], names: Iterable[str]) -> None:
        if not problems:
            return
        for name in names:
            (self.directory / name).unlink(missing_ok=True)
        message = f"{self.directory}: {'; '.join(problems)}; deleted, its images are recomputed."
        self.repairs.append(message)
        warnings.warn(message, RecordRepairedWarning, stacklevel=3)

    def clear(self) -> None:
        """Delete all results of this record (``--force``)."""
        with self._locked():
            for name in (*RESULT_FILES, "run.json", JOURNAL):
                (self.directory / name).unlink(missing_ok=True)
            shutil.rmtree(self.parts, ignore_errors=True)
            self.parts.mkdir(parents=True, exist_ok=True)

    def previous_info(self) -> dict[str, Any] | None:
        """The stored ``run.json`` of this record, if any."""
        path = self.directory / "run.json"
        return json.loads(path.read_text()) if path.exists() else None

    def done_ids(self) -> set[str]:
        """Image ids already committed (consolidated or in parts); corrupt parts are deleted and reported."""
        with self._locked():
            done = (
                set(read_scores(self.directory)["image_id"])
                if (self.directory / "scores.csv").exists()
                else set()
            )
            for part in self.parts.glob("*.npz"):
                try:
                    _read_part(part)
                except CorruptRecordError as err:
                    self._repair([str(err)], [f"{PARTS}/{part.name}"])
                    continue
                done.add(part.stem)
        return done

    def check_provenance(self, **provenance: Any) -> None:
        """Refuse to add images under a provenance (dataset fingerprint, method info, params) that differs
        from the stored results'; the values are then stamped on every part this writer commits.

        Raises
        ------
        RecordMismatchError
            Listing what differs (the caller may clear the record instead, ``--force``).
        """
        self.provenance.update({k: v for k, v in provenance.items() if v is not None})
        stored = [("run.json", self.previous_info() or {})]
        for part in sorted(self.parts.glob("*.npz"))[
            :1
        ]:  # all parts share one provenance (checked on commit)
            try:
                stored.append((f"part {part.name}", _read_part(part)[2]))
            except CorruptRecordError:
                pass  # done_ids() reports and deletes it
        for where, values in stored:
            if diffs := _differences(values, self.provenance):
                raise RecordMismatchError(
                    f"Stored results in {self.directory} ({where}) differ from this run: {'; '.join(diffs)}. "
                    "Re-run with --force to recompute them, or choose other --param values to keep both."
                )

    def start(self, *, worker: dict[str, Any] | None = None, **provenance: Any) -> None:
        """Take the run's provenance and worker description once: check the provenance against the stored
        results (:meth:`check_provenance`), then stamp both on every image this writer commits.
        """
        self.check_provenance(**provenance)
        self.worker = dict(worker or {})

    def add(self, image_id: str, labels: np.ndarray | None, row: dict[str, Any]) -> None:
        """Commit one image's prediction and score row (atomic: a part file renamed into place).

        Parts are not fsynced: a killed process loses nothing the kernel has, and a part torn by a power
        loss fails its zip CRC and is recomputed. Consolidated files are fsynced.
        """
        self.parts.mkdir(exist_ok=True)
        tmp = self.parts / f".{image_id}.{os.getpid()}.tmp.npz"
        payload: dict[str, Any] = {
            "row": np.array(json.dumps(row, default=_json_default)),
            "meta": np.array(json.dumps({**self.provenance, "worker": self.worker}, default=_json_default)),
        }
        if labels is not None:
            labels = np.asarray(labels)
            small = labels.size == 0 or int(labels.max()) <= np.iinfo(np.uint16).max
            payload["labels"] = labels.astype(
                np.uint16 if small else np.uint32, copy=False
            )  # compresses faster
        try:
            with store_write_errors(self.directory):
                np.savez_compressed(tmp, **payload)
                os.replace(tmp, self.parts / f"{image_id}.npz")
        except BaseException:
            tmp.unlink(
                missing_ok=True
            )  # frees the space of a half-written part; the stored ones are untouched
            raise

    def finalize(
        self, info: RunInfo, *, last_only: bool = False, image_ids: Iterable[str] | None = None
    ) -> pd.DataFrame | None:
        """Consolidate parts into ``predictions.h5`` + ``scores.csv`` + ``run.json`` (see module notes).

        With ``last_only`` nothing happens (returns None) while other workers hold claims: the last one
        consolidates. Returns the record's scores otherwise. ``image_ids`` (the dataset's test split): a part
        for any other image id is reported as corrupt and deleted, never merged.

        Raises
        ------
        StoreWriteError
            The disk is full or the folder read-only; the stored files are left as they were.
        """
        with self._locked():
            if last_only and held_claims(self.directory, exclude=self.claim):
                return None
            recover(self.directory)
            known = None if image_ids is None else set(image_ids)
            try:
                with store_write_errors(self.directory):
                    return self._consolidate(info, known)
            except BaseException:
                if not (self.directory / JOURNAL).exists():  # nothing was renamed: drop this attempt's files
                    for stale in self.directory.glob(f".*.{os.getpid()}.tmp"):
                        stale.unlink(missing_ok=True)
                raise

    def _consolidate(self, info: RunInfo, known: set[str] | None = None) -> pd.DataFrame:
        directory, pid = self.directory, os.getpid()
        previous = self.previous_info() or {}
        rows: dict[str, dict[str, Any]] = {}
        if (directory / "scores.csv").exists():
            rows = {r["image_id"]: r for r in read_scores(directory).to_dict("records")}
        new: dict[str, np.ndarray] = {}
        merged, workers = [], list(previous.get("workers", []))
        for part in sorted(self.parts.glob("*.npz")):
            try:
                row, labels, meta = _read_part(part)
                if known is not None and row["image_id"] not in known:
                    raise CorruptRecordError(
                        f"part {part.name} is for image {row['image_id']!r}, which is "
                        "not in the dataset's test split"
                    )
            except CorruptRecordError as err:
                self._repair([str(err)], [f"{PARTS}/{part.name}"])
                continue
            if diffs := _differences(meta, {**previous, **self.provenance}):
                raise RecordMismatchError(
                    f"{part} was computed under another provenance: {'; '.join(diffs)}."
                )
            rows[row["image_id"]] = row
            if labels is not None:
                new[row["image_id"]] = labels.astype(np.uint32, copy=False)
            if meta.get("worker") and meta["worker"] not in workers:
                workers.append(meta["worker"])
            if not info.method_info and meta.get("method_info"):
                info.method_info = meta["method_info"]
            merged.append(part.name)
        scores = pd.DataFrame([rows[k] for k in sorted(rows)], columns=SCORE_COLUMNS)
        keep = set(scores.loc[scores["error"].isna(), "image_id"])
        tmp_h5, tmp_csv = directory / f".predictions.h5.{pid}.tmp", directory / f".scores.csv.{pid}.tmp"
        self._write_predictions(tmp_h5, new, keep)
        write_synced(tmp_csv, scores.to_csv(index=False).encode())
        for key in ("method_info", "dataset_fingerprint", "hardware"):
            if not getattr(info, key) and previous.get(key):
                setattr(info, key, previous[key])
        info.started = min(info.started, previous.get("started") or info.started)
        info.workers = workers
        info.n_scored, info.n_failed = len(keep), len(scores) - len(keep)
        info.complete = len(scores) >= info.n_images
        info.seconds_total = float(scores["seconds"].fillna(0).sum())
        info.repairs = [*previous.get("repairs", []), *self.repairs][-20:]
        info.files = {"predictions.h5": file_digest(tmp_h5), "scores.csv": file_digest(tmp_csv)}
        tmp_json = directory / f".run.json.{pid}.tmp"
        write_synced(tmp_json, info.model_dump_json(indent=2).encode())
        replace = [[tmp_h5.name, "predictions.h5"], [tmp_csv.name, "scores.csv"], [tmp_json.name, "run.json"]]
        atomic_write(directory / JOURNAL, json.dumps({"replace": replace, "parts": merged}).encode())
        recover(directory)
        return scores

    def _write_predictions(self, tmp: Path, new: dict[str, np.ndarray], keep: set[str]) -> None:
        """Build the HDF5 file in memory, then write it with plain file I/O: a full disk then raises a clean
        ENOSPC (HDF5 itself reports write errors without an errno and complains again while closing).
        """
        final = self.directory / "predictions.h5"
        buffer = io.BytesIO()
        with h5py.File(buffer, "w") as out:
            group = out.create_group("labels")
            if final.exists():
                with h5py.File(final, "r") as old:
                    for key in old["labels"]:
                        if key in keep and key not in new:
                            old.copy(old["labels"][key], group, name=key)
            for key in sorted(new):
                if key in keep:
                    group.create_dataset(
                        key, data=new[key], compression="gzip", compression_opts=H5_GZIP_LEVEL
                    )
        write_synced(tmp, buffer.getbuffer())
