"""Family runs (issue 14.1): one shared stage per image, one record per method, same results as separate runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from scipy import ndimage

from apgbench.family import group_methods
from apgbench.family import run_family_ids as run_family
from apgbench.methods import Segmenter
from apgbench.results import read_scores, record_dir
from apgbench.runner import run_benchmark, run_many

DATASET = "synthetic-nuclei"


class _Family(Segmenter):
    """A toy family: the shared stage smooths the image (counted), each member thresholds it differently."""

    default_params: ClassVar[dict[str, Any]] = {"sigma": 1.0, "fail_on": -1}
    shared_calls: ClassVar[list[str]] = []
    loads: ClassVar[list[str]] = []
    level = 0.5

    def _prepare(self, device, domain):
        _Family.loads.append(self.name)

    def shared_key(self):
        return ("toy", self.params["sigma"], str(self.device))

    def share_model(self, owner):
        self._prepared, self._loaded_key = True, owner._loaded_key

    def shared_stage(self, image):
        _Family.shared_calls.append(self.name)
        if len(_Family.shared_calls) == self.params["fail_on"]:
            raise RuntimeError("encoder broke")
        image = np.asarray(image, dtype=float)
        image = image.mean(-1) if image.ndim == 3 else image
        smooth = ndimage.gaussian_filter(image, self.params["sigma"])
        return (smooth - smooth.min()) / (np.ptp(smooth) + 1e-9)

    def segment_shared(self, image, shared):
        return ndimage.label(shared > self.level)[0].astype(np.uint32)

    def _segment(self, image):
        return self.segment_shared(image, self.shared_stage(image))


class FamilyLow(_Family):
    name = "test-fam-low"
    level = 0.3


class FamilyHigh(_Family):
    name = "test-fam-high"
    level = 0.6


@pytest.fixture(autouse=True)
def _reset(register_methods):
    register_methods(FamilyLow, FamilyHigh)
    _Family.shared_calls, _Family.loads = [], []


def _labels_and_scores_frame(scores):
    return scores.set_index("image_id").drop(columns=["seconds", "peak_mem_mb"])


def _labels_and_scores(directory):
    return _labels_and_scores_frame(read_scores(directory))


def test_grouping_by_shared_key():
    assert group_methods(["classic", "test-fam-low", "test-fam-high"]) == [
        ["classic"],
        ["test-fam-low", "test-fam-high"],
    ]
    assert group_methods(["test-fam-low", "test-fam-high"], {"sigma": 2.0}) == [
        ["test-fam-low", "test-fam-high"]
    ]


def test_family_equals_separate_runs_and_computes_the_shared_stage_once(roots, tmp_path):
    results, _ = roots
    family = run_family(
        DATASET, ["test-fam-low", "test-fam-high"], results_root=results, limit=3, show_progress=False
    )
    assert len(_Family.shared_calls) == 3  # once per image, not once per image and method
    assert _Family.loads == ["test-fam-low"]  # one model load; the other member shares it
    separate_root = tmp_path / "separate"
    for method in ("test-fam-low", "test-fam-high"):
        run_benchmark(DATASET, method, results_root=separate_root, limit=3, show_progress=False)
    assert len(_Family.shared_calls) == 9
    for summary in family:
        assert summary.n_new == 3 and summary.n_failed == 0
        other = separate_root / summary.directory.relative_to(results)
        assert _labels_and_scores(summary.directory).equals(_labels_and_scores(other))
        info = json.loads((summary.directory / "run.json").read_text())
        assert info["family"]["methods"] == ["test-fam-low", "test-fam-high"]
        assert info["family"]["shared_seconds"] > 0
        # each method's seconds include the shared stage: never less than the shared part
        assert read_scores(summary.directory)["seconds"].sum() >= info["family"]["shared_seconds"]


def test_family_resumes_each_method_on_its_own(roots):
    results, _ = roots
    run_benchmark(DATASET, "test-fam-low", results_root=results, limit=2, show_progress=False)
    _Family.shared_calls = []
    low, high = run_family(
        DATASET, ["test-fam-low", "test-fam-high"], results_root=results, limit=3, show_progress=False
    )
    assert (low.n_new, low.n_skipped, high.n_new) == (1, 2, 3)
    assert len(_Family.shared_calls) == 3  # images 0, 1 for high only, image 2 for both: still once each
    again = run_family(
        DATASET, ["test-fam-low", "test-fam-high"], results_root=results, limit=3, show_progress=False
    )
    assert [s.n_new for s in again] == [0, 0] and len(_Family.shared_calls) == 3


def test_shared_stage_failure_is_recorded_for_every_member(roots):
    results, _ = roots
    summaries = run_family(
        DATASET,
        ["test-fam-low", "test-fam-high"],
        params={"fail_on": 2},
        results_root=results,
        limit=3,
        show_progress=False,
    )
    for summary in summaries:
        scores = read_scores(summary.directory)
        assert summary.n_failed == 1 and scores["error"].notna().sum() == 1
        assert "encoder broke" in scores["error"].dropna().iloc[0]


def test_run_many_uses_families_and_shards(roots):
    results, _ = roots
    summaries = list(
        run_many(
            [DATASET],
            ["classic", "test-fam-low", "test-fam-high"],
            results_root=results,
            limit=4,
            show_progress=False,
        )
    )
    assert [s.method for s in summaries] == ["classic", "test-fam-low", "test-fam-high"]
    assert len(_Family.shared_calls) == 4
    _Family.shared_calls = []
    for shard in ((0, 2), (2, 4)):
        run_family(
            DATASET,
            ["test-fam-low", "test-fam-high"],
            results_root=results / "sharded",
            limit=4,
            shard=shard,
            show_progress=False,
        )
    assert len(_Family.shared_calls) == 4
    for method in ("test-fam-low", "test-fam-high"):
        whole = read_scores(record_dir(results, method, DATASET, "default"))
        sharded = read_scores(record_dir(results / "sharded", method, DATASET, "default"))
        assert len(sharded) == 4  # the last shard consolidated the record
        assert _labels_and_scores_frame(whole).equals(_labels_and_scores_frame(sharded))


def test_submit_runs_a_family_as_one_task_per_dataset_and_shard(roots):
    from apgbench.distributed import pair_status, plan_tasks
    from apgbench.distributed import submit as submit_tasks

    results, _ = roots
    tasks = plan_tasks(
        [DATASET], ["test-fam-low", "classic", "test-fam-high"], results_root=results, limit=4, shard_size=2
    )
    record = submit_tasks(tasks, executor="debug", results_root=results)
    assert len(record["jobs"]) == 4  # (low + high) x 2 shards, classic x 2 shards
    assert sorted(len(j["tasks"]) for j in record["jobs"]) == [1, 1, 2, 2]
    assert len(_Family.shared_calls) == 4  # once per image for the family
    status_dir = Path(record["options"]["status_dir"])
    states = [
        json.loads((status_dir / f"{t['index']:05d}.json").read_text())["state"] for t in record["tasks"]
    ]
    assert states == ["done"] * 6
    assert all(not row["error"] for row in pair_status(record["tasks"], record))
    for method in ("test-fam-low", "test-fam-high"):
        assert len(read_scores(record_dir(results, method, DATASET, "default"))) == 4
