"""The runner and results store: records, resume after interruption, params isolation, failures."""

from __future__ import annotations

import contextlib
import json
from typing import Any, ClassVar

import h5py
import numpy as np
import pandas as pd
import pytest

from apgbench.methods import Segmenter
from apgbench.methods.classic import ClassicWatershed
from apgbench.results import load_scores, read_scores, run_key
from apgbench.runner import run_benchmark

DATASET = "synthetic-nuclei"


@pytest.fixture(autouse=True)
def _test_methods(register_methods):
    register_methods(FlakyClassic, CountingClassic, Misbehaving)


class Interrupt(BaseException):
    """Stands in for Ctrl-C / a killed worker: not an Exception, so the runner does not record it."""


class FlakyClassic(ClassicWatershed):
    """``classic`` that fails on chosen images or stops the whole run after some images (test only)."""

    name = "test-flaky"
    default_params: ClassVar[dict[str, Any]] = {
        **ClassicWatershed.default_params,
        "fail_on": 0,
        "stop_after": 0,
    }
    calls = 0

    def _segment(self, image):
        type(self).calls += 1
        if self.params["stop_after"] and type(self).calls > self.params["stop_after"]:
            raise Interrupt()
        if self.params["fail_on"] and type(self).calls == int(self.params["fail_on"]):
            raise RuntimeError("boom")
        return super()._segment(image)


def _stable(frame: pd.DataFrame) -> pd.DataFrame:
    return (
        frame.drop(columns=["seconds", "peak_mem_mb", "run_key", "method"])
        .sort_values("image_id")
        .reset_index(drop=True)
    )


def test_run_writes_complete_record(roots):
    results, _ = roots
    summary = run_benchmark(DATASET, "classic", results_root=results, show_progress=False)
    assert summary.n_images == summary.n_new == 6 and summary.n_failed == 0
    assert summary.directory == results / "classic" / DATASET / "default"
    scores = read_scores(summary.directory)
    assert len(scores) == 6 and scores["msa"].between(0, 1).all() and (scores["n_true"] > 0).all()
    assert summary.mean_msa == pytest.approx(scores["msa"].mean())
    with h5py.File(summary.directory / "predictions.h5") as f:
        assert sorted(f["labels"]) == sorted(scores["image_id"])
        assert f["labels"][scores["image_id"][0]].dtype == np.uint32
    info = json.loads((summary.directory / "run.json").read_text())
    assert info["complete"] and info["n_scored"] == 6 and info["domain"] == "nuclei-fluo"
    assert info["params"] == ClassicWatershed.default_params and info["dataset_fingerprint"]
    assert not (summary.directory / ".parts").exists()


def test_limit_then_resume_equals_uninterrupted(roots, tmp_path):
    results, _ = roots
    first = run_benchmark(DATASET, "classic", results_root=results, limit=2, show_progress=False)
    assert first.n_new == 2 and not json.loads((first.directory / "run.json").read_text())["complete"]
    second = run_benchmark(DATASET, "classic", results_root=results, show_progress=False)
    assert (second.n_new, second.n_skipped) == (4, 2)
    third = run_benchmark(DATASET, "classic", results_root=results, show_progress=False)
    assert third.n_new == 0
    fresh = run_benchmark(DATASET, "classic", results_root=tmp_path / "fresh", show_progress=False)
    pd.testing.assert_frame_equal(
        _stable(read_scores(second.directory)), _stable(read_scores(fresh.directory))
    )


def test_interrupted_run_resumes_from_parts(roots, tmp_path):
    results, _ = roots
    FlakyClassic.calls = 0
    with pytest.raises(Interrupt):
        run_benchmark(
            DATASET, "test-flaky", params={"stop_after": 3}, results_root=results, show_progress=False
        )
    directory = results / "test-flaky" / DATASET / run_key({"stop_after": 3}, {"stop_after": 0})
    assert len(list((directory / ".parts").glob("*.npz"))) == 3  # committed images survive the interruption
    FlakyClassic.calls = -100  # no more interruptions
    resumed = run_benchmark(
        DATASET, "test-flaky", params={"stop_after": 3}, results_root=results, show_progress=False
    )
    assert (resumed.n_new, resumed.n_skipped) == (3, 3)
    reference = run_benchmark(DATASET, "classic", results_root=tmp_path / "ref", show_progress=False)
    pd.testing.assert_frame_equal(
        _stable(read_scores(resumed.directory)), _stable(read_scores(reference.directory))
    )


def test_failing_image_is_recorded_and_run_goes_on(roots):
    results, _ = roots
    FlakyClassic.calls = 0
    summary = run_benchmark(
        DATASET, "test-flaky", params={"fail_on": 2}, results_root=results, show_progress=False
    )
    scores = read_scores(summary.directory)
    assert summary.n_failed == 1 and scores["error"].notna().sum() == 1
    assert "RuntimeError: boom" in scores["error"].dropna().iloc[0]
    FlakyClassic.calls = 0
    with pytest.raises(RuntimeError, match="boom"):
        run_benchmark(
            DATASET,
            "test-flaky",
            params={"fail_on": 2},
            results_root=results,
            force=True,
            fail_fast=True,
            show_progress=False,
        )


def test_different_params_never_overwrite(roots):
    results, _ = roots
    default = run_benchmark(DATASET, "classic", results_root=results, limit=2, show_progress=False)
    other = run_benchmark(
        DATASET, "classic", params={"h": 4.0}, results_root=results, limit=2, show_progress=False
    )
    assert default.directory != other.directory and other.directory.name.startswith("p-")
    assert read_scores(default.directory)["msa"].tolist() != read_scores(other.directory)["msa"].tolist()
    labels = set(load_scores(results)["label"])
    assert labels == {"classic", f"classic[{other.directory.name}]"}


def test_force_recomputes(roots):
    results, _ = roots
    run_benchmark(DATASET, "classic", results_root=results, limit=2, show_progress=False)
    again = run_benchmark(DATASET, "classic", results_root=results, limit=3, force=True, show_progress=False)
    assert again.n_new == 3 and len(read_scores(again.directory)) == 3


def test_unknown_parameter_is_rejected(roots):
    with pytest.raises(ValueError, match="no parameter"):
        run_benchmark(DATASET, "classic", params={"sigmaa": 2}, results_root=roots[0], show_progress=False)


class EmptySegmenter(Segmenter):
    name = "test-empty"

    def _segment(self, image):
        return np.zeros(image.shape[:2], np.uint8)


def test_segmenter_validates_output():
    class Bad(Segmenter):
        name = "test-bad"

        def _segment(self, image):
            return np.zeros((3, 3), np.float32)

    with pytest.raises(ValueError, match="shape"):
        Bad().segment(np.zeros((5, 5)))
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        EmptySegmenter().segment(np.zeros((5, 5, 7)))
    assert EmptySegmenter().segment(np.zeros((4, 6, 3))).dtype == np.uint32


class CountingClassic(ClassicWatershed):
    """``classic`` that counts model loads; its (pretend) model depends on the domain only for histology."""

    name = "test-counting"
    loads: ClassVar[list[str]] = []

    def _model_key(self, domain):
        return domain == "nuclei-histo"

    def _prepare(self, device, domain):
        type(self).loads.append(domain)


def test_run_many_loads_each_model_once(roots):
    from apgbench.runner import run_many

    CountingClassic.loads = []
    datasets = ["synthetic-nuclei", "synthetic-cells", "synthetic-labelfree", "synthetic-histo"]
    summaries = list(
        run_many(datasets, ["test-counting", "classic"], results_root=roots[0], limit=1, show_progress=False)
    )
    assert [(s.method, s.dataset) for s in summaries] == [
        (m, d) for m in ("test-counting", "classic") for d in datasets
    ]
    assert CountingClassic.loads == ["nuclei-fluo", "nuclei-histo"]  # not once per dataset
    # the reused instance still segments each dataset with that dataset's domain handling
    histo = read_scores(summaries[3].directory)["msa"].iloc[0]
    reference = read_scores(summaries[7].directory)["msa"].iloc[0]
    assert histo == reference


# -- parameters, failures, time limit, tags (issue 12, items 5, 8, 13, 15) ---------------------------------
@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"h": "abc"}, "'h' of 'classic' expects a finite number, got 'abc'"),
        ({"h": "nan"}, "finite number"),
        ({"h": "1e400"}, "finite number"),
        ({"h": [1.0, 2.0]}, "finite number"),
        ({"h": True}, "finite number"),
        ({"min_size": 2.5}, "expects an integer"),
        ({"threshold": 3}, "expects text"),
    ],
)
def test_bad_parameter_values_fail_before_any_record(roots, params, message):
    from apgbench.methods import ParameterError

    with pytest.raises(ParameterError, match=message):
        run_benchmark(DATASET, "classic", params=params, results_root=roots[0], show_progress=False)
    assert not roots[0].exists()  # no record, not even an empty folder


def test_int_for_float_default_is_the_default_record(roots):
    results, _ = roots
    same = run_benchmark(
        DATASET, "classic", params={"sigma": 1}, results_root=results, limit=1, show_progress=False
    )
    assert same.directory.name == "default"
    assert json.loads((same.directory / "run.json").read_text())["params"]["sigma"] == 1.0
    four = run_benchmark(
        DATASET, "classic", params={"h": 4}, results_root=results, limit=1, show_progress=False
    )
    text = run_benchmark(
        DATASET, "classic", params={"h": "4e0"}, results_root=results, limit=1, show_progress=False
    )
    assert four.directory == text.directory and four.directory.name == run_key({"h": 4.0}, {"h": 1.5})
    assert json.loads((four.directory / "run.json").read_text())["params"]["h"] == 4.0


class Misbehaving(ClassicWatershed):
    """``classic`` whose first image exits the interpreter, sleeps, or returns a boolean mask (test only)."""

    name = "test-misbehaving"
    default_params: ClassVar[dict[str, Any]] = {
        **ClassicWatershed.default_params,
        "mode": "exit",
        "seconds": 0.0,
    }
    calls = 0

    def _segment(self, image):
        type(self).calls += 1
        if type(self).calls == 1:
            if self.params["mode"] == "exit":
                import sys

                sys.exit(3)
            if self.params["mode"] == "sleep":
                import time

                end = time.monotonic() + self.params["seconds"]
                while time.monotonic() < end:  # Python code that swallows ordinary exceptions
                    with contextlib.suppress(Exception):
                        time.sleep(0.01)
            if self.params["mode"] == "mask":
                return super()._segment(image) > 0
        return super()._segment(image)


@pytest.mark.parametrize(("mode", "error"), [("exit", "SystemExit: 3"), ("mask", "boolean mask")])
def test_exit_and_bool_mask_are_recorded_failures(roots, mode, error):
    Misbehaving.calls = 0
    summary = run_benchmark(
        DATASET,
        "test-misbehaving",
        params={"mode": mode},
        results_root=roots[0],
        limit=3,
        show_progress=False,
    )
    scores = read_scores(summary.directory)
    assert summary.n_failed == 1 and summary.n_scored_total == 2 and not summary.all_failed
    assert error in scores["error"].dropna().iloc[0]


def test_image_timeout_records_failure_and_goes_on(roots):
    Misbehaving.calls = 0
    summary = run_benchmark(
        DATASET,
        "test-misbehaving",
        params={"mode": "sleep", "seconds": 30.0},
        results_root=roots[0],
        limit=3,
        image_timeout=0.3,
        show_progress=False,
    )
    scores = read_scores(summary.directory).set_index("image_id")
    failed = scores["error"].dropna()
    assert len(failed) == 1 and "timed out after 0.3 s" in failed.iloc[0]
    assert scores.loc[failed.index[0], "seconds"] < 5
    assert summary.n_scored_total == 2
    import signal

    assert signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, signal.default_int_handler, None)


def test_image_timeout_refused_off_the_main_thread(roots):
    import threading

    errors = []

    def run_off_the_main_thread():
        with pytest.raises(RuntimeError) as info:
            run_benchmark(DATASET, "classic", results_root=roots[0], image_timeout=5, show_progress=False)
        errors.append(info)

    thread = threading.Thread(target=run_off_the_main_thread)
    thread.start()
    thread.join()
    assert "main thread" in str(errors[0].value)


def test_tag_names_the_record_in_reports(roots):
    results, _ = roots
    with pytest.raises(ValueError, match="non-default parameters"):
        run_benchmark(DATASET, "classic", results_root=results, limit=1, tag="base", show_progress=False)
    tagged = run_benchmark(
        DATASET,
        "classic",
        params={"h": 3.0},
        results_root=results,
        limit=1,
        tag="lowthresh",
        show_progress=False,
    )
    assert json.loads((tagged.directory / "run.json").read_text())["tag"] == "lowthresh"
    # resuming without the tag keeps it
    run_benchmark(DATASET, "classic", params={"h": 3.0}, results_root=results, limit=2, show_progress=False)
    assert set(load_scores(results)["label"]) == {"classic[lowthresh]"}
    with pytest.raises(ValueError, match="already names other parameters"):
        run_benchmark(
            DATASET,
            "classic",
            params={"h": 2.0},
            results_root=results,
            limit=1,
            tag="lowthresh",
            show_progress=False,
        )
    with pytest.raises(ValueError, match="is tagged 'lowthresh'"):
        run_benchmark(
            DATASET,
            "classic",
            params={"h": 3.0},
            results_root=results,
            limit=1,
            tag="other",
            show_progress=False,
        )


def test_optional_shape_parameters_take_lists_of_numbers():
    from apgbench.methods import get_method
    from apgbench.methods.base import ParameterError, check_params

    defaults = get_method("apg").default_params
    assert defaults["tile_shape"] is None
    assert check_params("apg", defaults, {"tile_shape": [384, 384]})["tile_shape"] == [384, 384]
    for bad in ([384, "x"], [], [float("nan")], [True, 1]):
        with pytest.raises(ParameterError, match="tile_shape"):
            check_params("apg", defaults, {"tile_shape": bad})
