"""submit/status through submitit's debug and local executors (the code path SLURM runs), and a fake sbatch."""

from __future__ import annotations

import importlib.util
import json
import os
import stat
import time

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from apgbench.cli.submit import status, submit
from apgbench.distributed import Resources, load_profile, load_submission, pair_status, plan_tasks
from apgbench.distributed import submit as submit_tasks
from apgbench.results import RecordWriter, load_scores
from apgbench.runner import run_benchmark

DATASETS = ["synthetic-nuclei", "synthetic-cells"]
needs_submitit = pytest.mark.skipif(
    importlib.util.find_spec("submitit") is None,
    reason="submit needs the slurm extra: pip install -e '.[slurm]'",
)
VOLATILE = ["seconds", "peak_mem_mb"]

app = typer.Typer()
app.command()(submit)
app.command()(status)


def _stable(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=VOLATILE).sort_values(["dataset", "method", "image_id"]).reset_index(drop=True)


@pytest.fixture
def sequential(tmp_path):
    root = tmp_path / "sequential"
    for dataset in DATASETS:
        run_benchmark(dataset, "classic", results_root=root, show_progress=False)
    return _stable(load_scores(root))


@needs_submitit
@pytest.mark.parametrize("executor,options", [("debug", {}), ("local", {"workers": 2, "wait": True})])
def test_submit_equals_sequential_run(roots, sequential, executor, options):
    results, _ = roots
    tasks = plan_tasks(DATASETS, ["classic"], results_root=results, shard_size=4)
    assert [t.shard for t in tasks] == [(0, 4), (4, 6)] * 2
    record = submit_tasks(
        tasks, executor=executor, results_root=results, resources=Resources(time_min=5), **options
    )
    assert len(record["job_ids"]) == (4 if executor == "debug" else 2)
    pd.testing.assert_frame_equal(_stable(load_scores(results)), sequential)
    rows = pair_status(load_submission(results)["tasks"], load_submission(results))
    assert [(r["dataset"], r["state"], r["done"], r["images"]) for r in rows] == [
        (d, "done", 6, 6) for d in DATASETS
    ]


@needs_submitit
def test_cli_submit_status_reports_failures_and_skips_complete_pairs(roots):
    results, _ = roots
    runner = CliRunner()
    args = ["submit", "-d", "synthetic-nuclei", "-m", "classic,test-broken", "--executor", "debug"]
    out = runner.invoke(app, args)
    assert out.exit_code == 0, out.output
    assert "Submission" in out.output and "DEBUG_" in out.output
    shown = runner.invoke(app, ["status"], terminal_width=200)
    assert shown.exit_code == 0, shown.output
    assert "1 done, 1 failed" in shown.output
    rows = pair_status(load_submission(results)["tasks"], load_submission(results))
    assert rows[1]["error"] == "RuntimeError: weights file /nowhere/model.pt not found"
    again = runner.invoke(app, args)
    assert "1 pair(s) already complete" in again.output
    tasks = load_submission(results)["tasks"]
    assert [t["method"] for t in tasks] == ["test-broken"]  # only the unfinished pair was resubmitted
    direct = runner.invoke(app, ["status", "-d", "synthetic-cells", "-m", "classic"], terminal_width=200)
    assert direct.exit_code == 0 and "missing" in direct.output


@needs_submitit
def test_status_flags_a_worker_that_died_without_reporting(roots):
    results, _ = roots
    tasks = plan_tasks(["synthetic-nuclei"], ["classic"], results_root=results)
    record = submit_tasks(tasks, executor="debug", results_root=results)
    status_file = os.path.join(record["options"]["status_dir"], "00000.json")
    with open(status_file, "w") as handle:  # what a task killed by SLURM (time, memory) leaves behind
        json.dump({"task": 0, "state": "running"}, handle)
    with RecordWriter(tasks[0].record) as writer:  # and a record with one committed image, never consolidated
        writer.clear()
        writer.add("nuclei-000", None, {"image_id": "nuclei-000", "error": "x"})
    rows = pair_status(load_submission(results)["tasks"], load_submission(results))
    assert rows[0]["state"] == "failed" and "worker stopped without reporting" in rows[0]["error"]
    assert rows[0]["pending_parts"] == 1


@needs_submitit
def test_a_failing_image_is_counted_in_status(roots):
    results, _ = roots
    tasks = plan_tasks(["synthetic-nuclei"], ["test-fails-on-bright"], {"limit": 560.0}, results_root=results)
    submit_tasks(tasks, executor="debug", results_root=results)
    [row] = pair_status(load_submission(results)["tasks"], load_submission(results))
    assert row["state"] == "done" and 0 < row["failed_images"] < 6


FAKE_SBATCH = """#!/bin/bash
# Keeps the job script, answers like sbatch, and (with FAKE_SLURM_RUN=1) runs each array task in the
# background the way SLURM would: the script under the SLURM_* variables of that task.
cp "$1" "$FAKE_SLURM_DIR/job.sh"
last=$(sed -n 's/^#SBATCH --array=0-\\([0-9]*\\).*/\\1/p' "$1")
if [ "$FAKE_SLURM_RUN" = 1 ]; then
  (sleep 1; for i in $(seq 0 "$last"); do
     SLURM_JOB_ID=$((5000 + i)) SLURM_ARRAY_JOB_ID=4242 SLURM_ARRAY_TASK_ID=$i SLURM_PROCID=0 SLURM_LOCALID=0 \\
     SLURM_NODEID=0 SLURM_NTASKS=1 SLURM_JOB_NUM_NODES=1 SLURM_JOB_NODELIST=localhost bash "$1"
   done; touch "$FAKE_SLURM_DIR/finished") > "$FAKE_SLURM_DIR/jobs.log" 2>&1 &
fi
echo "Submitted batch job 4242"
"""
FAKE_SRUN = """#!/bin/bash
# Drops srun's options and runs the command.
while [[ "$1" == --* ]]; do if [ "$1" = --unbuffered ]; then shift; else shift 2; fi; done
exec "$@"
"""


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    """``sbatch``/``srun`` stand-ins on PATH; returns the folder where the job script lands."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("sbatch", FAKE_SBATCH), ("srun", FAKE_SRUN)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(stat.S_IRWXU)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SLURM_DIR", str(tmp_path))
    return tmp_path


@needs_submitit
def test_slurm_array_tasks_run_the_same_code_and_give_the_same_results(
    roots, fake_slurm, sequential, monkeypatch
):
    results, _ = roots
    monkeypatch.setenv("FAKE_SLURM_RUN", "1")
    tasks = plan_tasks(DATASETS, ["classic"], results_root=results, shard_size=4)
    record = submit_tasks(tasks, executor="slurm", results_root=results, resources=Resources(time_min=5))
    assert record["job_ids"] == ["4242_0", "4242_1", "4242_2", "4242_3"]
    deadline = time.monotonic() + 240
    while not (fake_slurm / "finished").exists():  # the array runs in the background, as on a cluster
        assert time.monotonic() < deadline, (fake_slurm / "jobs.log").read_text()
        time.sleep(0.5)
    record = load_submission(results)
    assert [t["status"]["state"] for t in record["tasks"]] == ["done"] * 4
    assert {t["status"]["job_id"] for t in record["tasks"]} == set(record["job_ids"])
    pd.testing.assert_frame_equal(_stable(load_scores(results)), sequential)
    assert {r["state"] for r in pair_status(record["tasks"], record)} == {"done"}


@needs_submitit
def test_slurm_submission_is_one_array_job_with_the_profile(roots, fake_slurm, tmp_path):
    results, _ = roots
    profile = tmp_path / "cluster.yaml"
    profile.write_text(
        "partition: gpu\ngpus: 1\ncpus: 8\nmem_gb: 32\ntime_min: 120\narray_parallelism: 2\n"
        "sbatch: {account: proj}\nsetup: ['module load cuda']\n"
    )
    out = CliRunner().invoke(
        app,
        [
            "submit",
            "-d",
            ",".join(DATASETS),
            "-m",
            "classic",
            "--profile",
            str(profile),
            "--shard-size",
            "4",
            "--sbatch",
            "constraint=a100",
        ],
    )
    assert out.exit_code == 0, out.output
    assert "array job 4242 (4 tasks: 4242_0 ... 4242_3)" in " ".join(out.output.split())
    script = (fake_slurm / "job.sh").read_text()
    for line in (
        "--array=0-3%2",
        "--partition=gpu",
        "--gpus-per-node=1",
        "--cpus-per-task=8",
        "--mem=32GB",
        "--time=120",
        "--account=proj",
        "--constraint=a100",
        "module load cuda",
    ):
        assert line in script
    record = load_submission(results)
    assert record["options"]["device"] == "cuda" and len(record["tasks"]) == 4
    assert {r["state"] for r in pair_status(record["tasks"], record)} == {"queued"}


def test_profiles_in_configs_load_and_typos_are_refused(tmp_path):
    assert load_profile("default").gpus >= 1 and load_profile("cpu").gpus == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("partiton: gpu\n")
    with pytest.raises(ValueError, match="partiton"):
        load_profile(bad)
    with pytest.raises(FileNotFoundError, match="known profiles"):
        load_profile("no-such-profile")


@needs_submitit
def test_profile_image_timeout_reaches_the_workers(roots):
    from apgbench.datasets import load_dataset

    first = next(iter(load_dataset("synthetic-nuclei")))
    params = {"seconds": 60.0, "sleep_on": f"{first.image.mean():.6f}"}
    tasks = plan_tasks(["synthetic-nuclei"], ["test-sleeps"], params, limit=3)
    start = time.monotonic()
    submit_tasks(tasks, executor="debug", resources=Resources(image_timeout_s=0.5))
    assert time.monotonic() - start < 30
    scores = load_scores(roots[0]).set_index("image_id")
    assert scores.loc[first.image_id, "error"] == "ImageTimeout: timed out after 0.5 s"
    assert scores["error"].notna().sum() == 1 and len(scores) == 3
