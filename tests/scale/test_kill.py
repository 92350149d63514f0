"""Fault injection: a run killed with SIGKILL at random points resumes to exactly the uninterrupted results.

Each kill point is either a random moment (a real asynchronous ``kill -9``, which may land inside any write)
or a random file-system step of the run (before the k-th ``os.replace`` / ``fsync`` / ``unlink`` / ``rmdir``:
every commit and consolidation boundary is reachable, independent of the machine's speed). Kills are chained:
each resumed run may be killed again before a final run completes the record.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import signal
import time
import traceback

import h5py
import numpy as np
import pandas as pd

from apgbench.results import JOURNAL, PARTS, check_record, read_scores
from apgbench.runner import run_benchmark

DATASET, METHOD = "synthetic-nuclei", "classic"
HOOKS = ("replace", "fsync", "unlink", "rmdir")
N_KILLS, SEED = 30, 20261124
VOLATILE = ["seconds", "peak_mem_mb"]


def _child(results, kill_at: int | None) -> None:
    """A `run` in a forked process; with ``kill_at`` it SIGKILLs itself before its kill_at-th file step."""
    if kill_at is not None:
        counter = itertools.count(1)
        for name in HOOKS:
            original = getattr(os, name)

            def hooked(*args, _original=original, **kwargs):
                if next(counter) == kill_at:
                    os.kill(os.getpid(), signal.SIGKILL)
                return _original(*args, **kwargs)

            setattr(os, name, hooked)
    try:
        run_benchmark(DATASET, METHOD, results_root=results, show_progress=False)
    except BaseException:
        traceback.print_exc()
        os._exit(3)
    os._exit(0)


def _run(results, *, kill_at: int | None = None, kill_after: float | None = None) -> int:
    process = multiprocessing.get_context("fork").Process(target=_child, args=(results, kill_at))
    process.start()
    if kill_after is not None:
        process.join(kill_after)
        if process.is_alive():
            os.kill(process.pid, signal.SIGKILL)
    process.join(60)
    return process.exitcode


def _count_steps(results) -> int:
    counts = itertools.count()
    originals = {name: getattr(os, name) for name in HOOKS}
    try:
        for name, original in originals.items():
            setattr(os, name, lambda *a, _o=original, **k: (next(counts), _o(*a, **k))[1])
        run_benchmark(DATASET, METHOD, results_root=results, show_progress=False)
    finally:
        for name, original in originals.items():
            setattr(os, name, original)
    return next(counts)


def _record(results):
    return results / METHOD / DATASET / "default"


def _predictions(directory) -> dict[str, np.ndarray]:
    with h5py.File(directory / "predictions.h5", "r") as f:
        return {key: f["labels"][key][()] for key in f["labels"]}


def test_sigkill_at_random_points_resumes_to_identical_results(tmp_path):
    reference = _record(tmp_path / "reference")
    n_steps = _count_steps(tmp_path / "reference")
    start = time.perf_counter()
    assert _run(tmp_path / "timing") == 0
    duration = time.perf_counter() - start  # one fresh run, fork included, to spread the timed kills over
    expected_scores = read_scores(reference).drop(columns=VOLATILE)
    expected_predictions = _predictions(reference)

    rng = np.random.default_rng(SEED)
    kills, chains, runs, seen = 0, 0, 0, {"parts": 0, "consolidating": 0, "results": 0}
    results = tmp_path / "chain0"
    while kills < N_KILLS:
        runs += 1
        assert runs < 10 * N_KILLS, "runs keep finishing before their kill point"
        if rng.random() < 0.5:
            code = _run(results, kill_at=int(rng.integers(1, n_steps + 1)))
        else:
            code = _run(results, kill_after=float(rng.uniform(0.0, 1.1 * duration)))
        assert code in (0, -signal.SIGKILL), f"run exited with {code} after a kill"
        directory = _record(results)
        if code == -signal.SIGKILL:
            kills += 1
            seen["parts"] += any((directory / PARTS).glob("*.npz"))
            seen["consolidating"] += (directory / JOURNAL).exists() or any(directory.glob(".*.tmp"))
            seen["results"] += (directory / "scores.csv").exists()
            continue
        _check_equal(directory, expected_scores, expected_predictions)  # a run completed: start a new chain
        chains += 1
        results = tmp_path / f"chain{chains}"
    if (results / METHOD).exists():
        assert _run(results) == 0
        _check_equal(_record(results), expected_scores, expected_predictions)
        chains += 1
    print(
        f"kill points: {kills} (runs {runs}, chains {chains}); kills that left parts / a consolidation "
        f"half-way / consolidated results: {seen}"
    )
    assert all(seen.values()), seen  # every kind of intermediate state was hit and recovered from


def _check_equal(directory, expected_scores, expected_predictions) -> None:
    pd.testing.assert_frame_equal(read_scores(directory).drop(columns=VOLATILE), expected_scores)
    predictions = _predictions(directory)
    assert predictions.keys() == expected_predictions.keys()
    for key, labels in expected_predictions.items():
        np.testing.assert_array_equal(predictions[key], labels)
    assert check_record(directory) == []
    assert not (directory / JOURNAL).exists() and not (directory / PARTS).exists()
    assert not list(directory.glob(".*.tmp"))
