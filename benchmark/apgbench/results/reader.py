"""Reading records: scores, predictions, integrity checks, and all scores under a results root."""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from filelock import FileLock
from pydantic import ValidationError

from .schema import (
    JOURNAL,
    LOCK_WAIT_S,
    RESULT_FILES,
    SCORE_COLUMNS,
    CorruptRecordError,
    RecordMismatchError,
    RunInfo,
    read_scores,
)
from .writer import check_record, recover

#: Columns :func:`load_scores` adds to the stored ones.
EXTRA_COLUMNS = ["domain", "label", "n_expected"]


@dataclass(frozen=True)
class RecordProblem:
    """A record that cannot be read: its folder, what is wrong (naming the file), and the repairing command."""

    directory: Path
    message: str
    repair: str

    def __str__(self) -> str:
        return f"{self.message}; repair it with `{self.repair}`."


def read_prediction(directory: str | os.PathLike, image_id: str) -> np.ndarray:
    """One stored label image of a record."""
    with h5py.File(Path(directory) / "predictions.h5", "r") as f:
        return f["labels"][image_id][()]


def iter_records(results_root: str | os.PathLike) -> Iterable[Path]:
    """Every record folder under the root that has a ``run.json``, in sorted order."""
    root = Path(results_root)
    return sorted(p.parent for p in root.glob("*/*/*/run.json") if not p.parts[-4].startswith("."))


def _record_folders(results_root: str | os.PathLike) -> list[Path]:
    """Record folders holding a result file, a manifest or a journal (also those that lost their run.json)."""
    root, found = Path(results_root), set[Path]()
    for name in (*RESULT_FILES, "run.json", JOURNAL):
        found.update(p.parent for p in root.glob(f"*/*/*/{name}") if not p.parts[-4].startswith("."))
    return sorted(found)


def repair_command(directory: str | os.PathLike, info: Mapping | None = None) -> str:
    """The command that recomputes a record: ``apgbench run`` (or ``evaluate`` for external predictions).

    A damaged record is repaired by running it again: the run deletes the damaged files and recomputes them.
    """
    directory = Path(directory)
    method, dataset, key = directory.parts[-3:]
    info = info or {}
    params = info.get("params") or {}
    if (info.get("method_info") or {}).get("external"):
        folder = shlex.quote(str(params.get("predictions", "FOLDER")))
        return f"apgbench evaluate -d {dataset} --predictions {folder} --name {method} --force"
    command = f"apgbench run -d {dataset} -m {method}"
    if key != "default":
        command += (
            "".join(
                f" -p {shlex.quote(f'{k}={json.dumps(v) if not isinstance(v, str) else v}')}"
                for k, v in sorted(params.items())
            )
            if params
            else " -p ... (its parameters)"
        )
    return command


def record_problem(directory: str | os.PathLike) -> RecordProblem | None:
    """Why a record cannot be read (a file missing, unreadable or altered), or None when it can."""
    directory = Path(directory)
    message: str | None
    try:
        problems = verify_record(directory)  # finishes a consolidation that a killed process left half-way
    except CorruptRecordError as err:
        problems, message = [], str(err)
    else:
        message = None
    try:
        info = json.loads((directory / "run.json").read_text()) if (directory / "run.json").exists() else None
    except (ValueError, UnicodeDecodeError, OSError):
        info = None
    if message is not None:
        pass
    elif not (directory / "run.json").exists():
        message = f"{directory / 'run.json'} is missing"
    elif not (directory / "scores.csv").exists():
        message = f"{directory / 'scores.csv'} is missing"
    elif problems:  # each problem starts with the file's name: give its full path
        message = "; ".join(f"{directory}{os.sep}{problem}" for problem in problems)
    else:
        try:
            RunInfo.model_validate(info)
            return None
        except (ValidationError, TypeError) as err:
            message = f"{directory / 'run.json'} is unreadable ({str(err).splitlines()[0]})"
    return RecordProblem(
        directory, message, repair_command(directory, info if isinstance(info, dict) else None)
    )


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
    with FileLock(str(directory / ".lock"), timeout=LOCK_WAIT_S):
        recover(directory)
        return check_record(directory, predictions=predictions)


def load_scores(
    results_root: str | os.PathLike,
    *,
    fingerprints: Mapping[str, str] | None = None,
    problems: list[RecordProblem] | None = None,
) -> pd.DataFrame:
    """All per-image scores under a results root, with ``domain``, ``label`` and ``n_expected`` columns added.

    Parameters
    ----------
    results_root : path
        The results store.
    fingerprints : mapping, optional
        ``dataset id -> fingerprint prefix``: for a dataset whose records were computed on different
        versions of its prepared data, keep only the records of this one.
    problems : list, optional
        Where to collect the records that cannot be read (a file missing, unreadable or altered), as
        :class:`RecordProblem`; they are then skipped. Without it, the first one raises.

    ``n_expected`` is the size of the dataset's test split when the record was made (``run.json``), so a
    reader sees images that were never scored. Returns an empty frame with the right columns when nothing is
    stored yet.

    Raises
    ------
    CorruptRecordError
        If a record cannot be read and ``problems`` is not given (running it again repairs it).
    RecordMismatchError
        If records of one dataset come from different dataset fingerprints and ``fingerprints`` does not
        say which to use.
    """
    frames: list[pd.DataFrame] = []
    seen: dict[str, dict[str, list[Path]]] = {}
    for directory in _record_folders(results_root):
        problem = record_problem(directory)
        if problem is None:
            try:
                info = json.loads((directory / "run.json").read_text())
                frame = read_scores(directory)
            except CorruptRecordError as err:
                problem = RecordProblem(directory, str(err), repair_command(directory, None))
        if problem is not None:
            if problems is None:
                raise CorruptRecordError(str(problem))
            problems.append(problem)
            continue
        fingerprint = info.get("dataset_fingerprint") or ""
        wanted = (fingerprints or {}).get(info["dataset"])
        if wanted is not None and not fingerprint.startswith(wanted):
            continue
        seen.setdefault(info["dataset"], {}).setdefault(fingerprint, []).append(directory)
        frame["domain"] = info.get("domain")
        frame["label"] = record_label(info["method"], info["run_key"], info.get("tag"))
        frame["n_expected"] = int(info.get("n_images") or len(frame))
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
        return pd.DataFrame(columns=[*SCORE_COLUMNS, *EXTRA_COLUMNS])
    return pd.concat(frames, ignore_index=True)
