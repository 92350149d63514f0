"""The results store: one self-contained record per (method, dataset, parameters), crash-safe.

Layout under the results root::

    <method>/<dataset>/<run_key>/
        predictions.h5   /labels/<image_id>: uint32 label image per scored image
        scores.csv       one row per image (columns: SCORE_COLUMNS), sorted by image id
        run.json         RunInfo: provenance, summary, and the sha256 of the two files above
        .parts/          <image_id>.npz per image committed by a run in progress
        .locks/          one lock per worker claim (``all`` or ``shard-<start>-<stop>``)
        .lock            the record lock, held briefly to check, consolidate or clear the record
        .commit.json     redo journal of a consolidation in progress

Crash safety. Every image is committed on its own as a part (temporary name, then ``os.replace``). Parts are
consolidated into ``predictions.h5`` + ``scores.csv`` + ``run.json`` by writing all three under temporary
names, then a journal naming them, then renaming: whoever next takes the record lock finds the journal and
finishes the renames, so the three files always belong together, whenever the process is killed.

Integrity. ``run.json`` holds the sha256 of ``scores.csv`` and ``predictions.h5``; a part is a zip with
CRCs. A file that fails its check (truncated, half-copied) is reported, deleted and its images recomputed;
readers (:func:`load_scores`) refuse it. Provenance (dataset fingerprint, method info, params) is stored in
every part and in ``run.json``; a run never adds images computed under a different provenance
(:class:`RecordMismatchError`), and :func:`load_scores` never mixes datasets of different fingerprints.
"""

from __future__ import annotations

from .reader import (
    EXTRA_COLUMNS,
    RecordProblem,
    iter_records,
    load_scores,
    read_prediction,
    record_label,
    record_problem,
    repair_command,
    verify_record,
)
from .schema import (
    JOURNAL,
    LOCKS,
    PARTS,
    PROVENANCE_KEYS,
    RESULT_FILES,
    SCORE_COLUMNS,
    THRESHOLD_COLUMNS,
    CorruptRecordError,
    RecordBusyError,
    RecordMismatchError,
    RecordRepairedWarning,
    RunInfo,
    StoreWriteError,
    atomic_write,
    dataset_mean,
    file_digest,
    git_revision,
    now,
    read_scores,
    record_dir,
    run_key,
    utc_now,
    valid_scores,
)
from .writer import RecordWriter, check_record, held_claims, recover

__all__ = [
    "EXTRA_COLUMNS",
    "JOURNAL",
    "LOCKS",
    "PARTS",
    "PROVENANCE_KEYS",
    "RESULT_FILES",
    "SCORE_COLUMNS",
    "THRESHOLD_COLUMNS",
    "CorruptRecordError",
    "RecordBusyError",
    "RecordMismatchError",
    "RecordProblem",
    "RecordRepairedWarning",
    "RecordWriter",
    "RunInfo",
    "StoreWriteError",
    "atomic_write",
    "check_record",
    "dataset_mean",
    "file_digest",
    "git_revision",
    "held_claims",
    "iter_records",
    "load_scores",
    "now",
    "read_prediction",
    "read_scores",
    "record_dir",
    "record_label",
    "record_problem",
    "recover",
    "repair_command",
    "run_key",
    "utc_now",
    "valid_scores",
    "verify_record",
]
