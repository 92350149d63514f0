"""The crash-safe store: corrupted files, provenance, concurrent workers, failing images."""

from __future__ import annotations

import json
import multiprocessing
import os

import h5py
import numpy as np
import pandas as pd
import pytest

from apgbench.methods.classic import ClassicWatershed
from apgbench.results import (
    PARTS,
    CorruptRecordError,
    RecordBusyError,
    RecordMismatchError,
    RecordRepairedWarning,
    RecordWriter,
    check_record,
    load_scores,
    read_scores,
)
from apgbench.runner import run_benchmark

DATASET, METHOD = "synthetic-nuclei", "classic"
VOLATILE = ["seconds", "peak_mem_mb"]


def _run(results, **kwargs):
    return run_benchmark(
        DATASET, kwargs.pop("method", METHOD), results_root=results, show_progress=False, **kwargs
    )


def _same_as(directory, reference) -> None:
    pd.testing.assert_frame_equal(
        read_scores(directory).drop(columns=VOLATILE), read_scores(reference).drop(columns=VOLATILE)
    )
    with h5py.File(directory / "predictions.h5") as f, h5py.File(reference / "predictions.h5") as g:
        assert sorted(f["labels"]) == sorted(g["labels"])
        for key in g["labels"]:
            np.testing.assert_array_equal(f["labels"][key][()], g["labels"][key][()])


@pytest.fixture
def reference(tmp_path):
    return _run(tmp_path / "reference").directory


def _truncate(path, fraction=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


@pytest.mark.parametrize("name", ["predictions.h5", "scores.csv"])
def test_truncated_file_is_detected_refused_and_recomputed(roots, reference, name):
    results, _ = roots
    directory = _run(results).directory
    _truncate(directory / name, 0.6)
    assert check_record(directory) == [f"{name} is truncated or altered (size/sha256 differ from run.json)"]
    if name == "scores.csv":
        with pytest.raises(CorruptRecordError, match=r"scores.csv is truncated"):
            load_scores(results)
    with pytest.warns(RecordRepairedWarning, match="truncated"):
        summary = _run(results)
    assert summary.n_new == 6 and summary.repairs
    _same_as(directory, reference)
    assert len(load_scores(results)) == 6
    assert "truncated" in json.loads((directory / "run.json").read_text())["repairs"][0]


def test_half_written_csv_line_is_detected(roots, reference):
    results, _ = roots
    directory = _run(results).directory
    text = (directory / "scores.csv").read_text()
    (directory / "scores.csv").write_text(text[: text.rindex("\n", 0, len(text) - 1) + 20])
    with pytest.raises(CorruptRecordError):
        load_scores(results)
    with pytest.warns(RecordRepairedWarning):
        _run(results)
    _same_as(directory, reference)


def test_corrupt_part_is_deleted_and_its_image_recomputed(roots, reference):
    results, _ = roots
    directory = _run(results, limit=2).directory
    (directory / PARTS).mkdir(exist_ok=True)
    (directory / PARTS / "nuclei-004.npz").write_bytes(b"PK\x03\x04 not a zip at all")
    with pytest.warns(RecordRepairedWarning, match="nuclei-004.npz is unreadable"):
        summary = _run(results)
    assert summary.n_new == 4
    _same_as(directory, reference)


def test_resume_refuses_another_dataset_version_or_method_version(roots, monkeypatch):
    results, _ = roots
    directory = _run(results, limit=2).directory
    info = json.loads((directory / "run.json").read_text())
    (directory / "run.json").write_text(json.dumps({**info, "dataset_fingerprint": "0" * 64}))
    with pytest.raises(RecordMismatchError, match="dataset_fingerprint"):
        _run(results)
    _run(results, force=True, limit=2)
    monkeypatch.setattr(ClassicWatershed, "info", lambda self: {"version": "2.0"})
    with pytest.raises(RecordMismatchError, match="method_info"):
        _run(results)  # images 3-6 would be computed by another version of the method
    summary = _run(results, force=True)
    assert summary.n_new == 6
    assert json.loads((directory / "run.json").read_text())["method_info"] == {"version": "2.0"}


def test_load_scores_refuses_to_mix_dataset_versions(roots):
    results, _ = roots
    _run(results, limit=1)
    other = _run(results, method="test-fails-on-bright", limit=1).directory
    info = json.loads((other / "run.json").read_text())
    (other / "run.json").write_text(json.dumps({**info, "dataset_fingerprint": "f" * 64}))
    with pytest.raises(RecordMismatchError, match="different prepared data"):
        load_scores(results)
    assert set(load_scores(results, fingerprints={DATASET: "ffff"})["method"]) == {"test-fails-on-bright"}


def test_overlapping_workers_are_refused_disjoint_shards_are_not(roots):
    results, _ = roots
    directory = results / METHOD / DATASET / "default"
    with RecordWriter(directory):
        with pytest.raises(RecordBusyError):
            _run(results)
        with pytest.raises(RecordBusyError):
            _run(results, shard=(0, 3))
    with RecordWriter(directory, shard=(0, 3)):
        with pytest.raises(RecordBusyError):
            _run(results, shard=(2, 4))
        summary = _run(results, shard=(3, 6))  # runs beside the claim on 0-3, which consolidates last
    assert summary.n_new == 3 and not summary.consolidated
    assert len(list((directory / PARTS).glob("*.npz"))) == 3


def _shard_worker(results, shard, barrier):
    barrier.wait(10)
    try:
        _run(results, shard=shard)
    except BaseException:
        os._exit(3)
    os._exit(0)


def test_concurrent_shard_workers_build_the_same_record(roots, reference):
    results, _ = roots
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(3)
    workers = [
        context.Process(target=_shard_worker, args=(results, shard, barrier))
        for shard in [(0, 2), (2, 4), (4, 6)]
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [w.exitcode for w in workers] == [0, 0, 0]
    directory = results / METHOD / DATASET / "default"
    _same_as(directory, reference)  # the last worker consolidated every shard's parts
    assert not (directory / PARTS).exists() and check_record(directory) == []
    info = json.loads((directory / "run.json").read_text())
    assert info["complete"] and info["n_scored"] == 6 and info["workers"][0]["hardware"]["cpu"]


def test_failing_image_is_recorded_counted_and_kept_out_of_predictions(roots):
    results, _ = roots
    summary = _run(results, method="test-fails-on-bright", params={"limit": 560.0})
    scores = read_scores(summary.directory)
    failed = scores[scores["error"].notna()]
    assert 0 < summary.n_failed == len(failed) < 6 and failed["error"].str.contains("too bright").all()
    info = json.loads((summary.directory / "run.json").read_text())
    assert info["n_failed"] == summary.n_failed and info["complete"]
    with h5py.File(summary.directory / "predictions.h5") as f:
        assert set(f["labels"]) == set(scores.loc[scores["error"].isna(), "image_id"])
