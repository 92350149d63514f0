"""Run many (dataset, method) pairs through submitit: a SLURM array job, a local process pool, or in-process.

One code path for all three executors: :func:`plan_tasks` turns a selection into tasks (a pair, or a shard of
a pair's images), :func:`submit` hands them to a ``submitit.AutoExecutor`` (``cluster`` = ``slurm``,
``local`` or ``debug``) that calls :func:`run_tasks` in the worker, and :func:`pair_status` reads back what
happened. Each worker writes a small status file per task (running, done, failed with its error); the
records themselves are crash-safe (see :mod:`apgbench.results`), so a killed or requeued task simply resumes.

A submission is recorded as ``<results_root>/.submissions/<id>/submission.json``; submitit's pickles and
logs go next to it (the results root must be on a file system the compute nodes share).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import traceback
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from .config import config_dir, load_yaml
from .config import data_root as _data_root
from .config import results_root as _results_root
from .errors import InvalidInputError, NotFoundError, UnavailableError
from .plan import plan_runs
from .results import (
    JOURNAL,
    PARTS,
    CorruptRecordError,
    RunInfo,
    atomic_write,
    check_record,
    held_claims,
    recover,
    utc_now,
)
from .runner import error_line, run_benchmark

EXECUTORS = ("slurm", "local", "debug")
SUBMISSIONS = ".submissions"
RESOURCE_KEYS = (
    "partition",
    "gpus",
    "cpus",
    "mem_gb",
    "time_min",
    "array_parallelism",
    "sbatch",
    "setup",
    "image_timeout_s",
)


@dataclass
class Task:
    """One unit of work: a (dataset, method, params) record, or the shard ``[start, stop)`` of its images.

    ``record`` is the record's folder, as everywhere in apgbench (its last part is the run key).
    """

    dataset: str
    method: str
    params: dict[str, Any]
    record: str
    limit: int | None = None
    shard: tuple[int, int] | None = None
    index: int = 0

    @property
    def name(self) -> str:
        """``method/dataset/run_key`` plus the shard range."""
        key = Path(self.record).name
        return f"{self.method}/{self.dataset}/{key}" + (
            f"[{self.shard[0]}:{self.shard[1]}]" if self.shard else ""
        )


@dataclass
class Resources:
    """What each SLURM task asks for (``time_min`` also bounds local jobs); ``sbatch`` holds any other
    ``#SBATCH`` option (``{account: x, constraint: a100}``), ``setup`` shell lines run before the task;
    ``image_timeout_s`` bounds each image (a slower one is recorded as failed; None: no limit).
    """

    partition: str | None = None
    gpus: int = 0
    cpus: int = 4
    mem_gb: float = 16.0
    time_min: int = 240
    array_parallelism: int = 64
    sbatch: dict[str, Any] = field(default_factory=dict)
    setup: list[str] = field(default_factory=list)
    image_timeout_s: float | None = None


def executor_problem(kind: str) -> str | None:
    """Why ``kind`` cannot submit from this machine (unknown, or SLURM without ``sbatch``), else None."""
    if kind not in EXECUTORS:
        return f"Unknown executor '{kind}'; choose one of {', '.join(EXECUTORS)}."
    if kind == "slurm" and shutil.which("sbatch") is None:
        return (
            "SLURM's `sbatch` is not found on this machine; submit from a SLURM login node, or use "
            "--executor local (a process pool here) or --executor debug (in this process)."
        )
    return None


def load_profile(profile: str | os.PathLike) -> Resources:
    """Read a resources profile: a YAML path, or a name in ``configs/slurm/`` (``default``, ``cpu``...)."""
    path = Path(profile)
    if not path.suffix:
        path = config_dir() / "slurm" / f"{profile}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in (config_dir() / "slurm").glob("*.yaml"))
        raise NotFoundError(f"No SLURM profile '{profile}' ({path}); known profiles: {', '.join(known)}.")
    values = load_yaml(path) or {}
    unknown = set(values) - set(RESOURCE_KEYS)
    if unknown:
        raise InvalidInputError(
            f"{path}: unknown keys {sorted(unknown)}; allowed: {', '.join(RESOURCE_KEYS)}."
        )
    return Resources(**values)


def plan_tasks(
    dataset_ids: list[str],
    method_ids: list[str],
    params: dict[str, Any] | None = None,
    *,
    results_root: str | os.PathLike | None = None,
    data_root: str | os.PathLike | None = None,
    limit: int | None = None,
    shard_size: int | None = None,
) -> list[Task]:
    """Tasks for every (dataset, method) pair, split into shards of ``shard_size`` images if given.

    Every id, parameter and dataset is checked here (:func:`~apgbench.plan.plan_runs`), on the submitting
    machine, before anything is queued.
    """
    root = Path(_results_root(results_root)).resolve()
    tasks: list[Task] = []
    for plan in plan_runs(
        dataset_ids, method_ids, params, results_root=root, data_root=data_root, limit=limit
    ):
        with plan.build():  # a method's own checks of its parameters fail now, not on the cluster
            pass
        for part in plan.shards(shard_size):
            tasks.append(
                Task(
                    plan.dataset,
                    plan.method,
                    dict(plan.user_params),
                    str(plan.directory),
                    limit,
                    part.shard,
                    len(tasks),
                )
            )
    return tasks


def run_tasks(tasks: list[dict[str, Any]], options: dict[str, Any]) -> list[dict[str, Any]]:
    """Worker entry point (what submitit runs): run each task, writing its status file as it goes.

    A failing task is recorded with its error and the next one runs; at the end the job fails (so SLURM shows
    it) if any task failed, unless ``options["raise_errors"]`` is false (the debug executor would open pdb).
    """
    from .family import run_family_ids, task_units

    outcomes = []
    for unit in task_units(tasks):  # a family's tasks on one dataset run together (apgbench.family)
        task = unit[0]
        bases, statuses = [], []
        for t in unit:
            statuses.append(Path(options["status_dir"]) / f"{t['index']:05d}.json")
            bases.append(
                {"task": t["index"], "host": os.uname().nodename, "pid": os.getpid(), "job_id": _job_id()}
            )
            atomic_write(statuses[-1], _json(bases[-1] | {"state": "running", "started": utc_now()}))
        try:
            common = {
                "params": task["params"],
                "results_root": options["results_root"],
                "data_root": options["data_root"],
                "limit": task["limit"],
                "device": options["device"],
                "fail_fast": options["fail_fast"],
                "show_progress": False,
                "shard": tuple(task["shard"]) if task["shard"] else None,
                "image_timeout": options.get("image_timeout"),
            }
            summaries = (
                run_family_ids(task["dataset"], [t["method"] for t in unit], **common)
                if len(unit) > 1
                else [run_benchmark(task["dataset"], task["method"], **common)]
            )
            unit_outcomes = [
                {
                    **base,
                    "state": "done",
                    "n_new": summary.n_new,
                    "n_failed": summary.n_failed,
                    "repairs": summary.repairs,
                }
                for base, summary in zip(bases, summaries)
            ]
        except Exception as err:
            unit_outcomes = [
                {
                    **base,
                    "state": "failed",
                    "error": error_line(err),
                    "traceback": traceback.format_exc(limit=5),
                }
                for base in bases
            ]
        for status, outcome in zip(statuses, unit_outcomes):
            outcome["finished"] = utc_now()
            atomic_write(status, _json(outcome))
            outcomes.append(outcome)
    failed = [o for o in outcomes if o["state"] == "failed"]
    if failed and options.get("raise_errors", True):
        raise RuntimeError(f"{len(failed)} of {len(outcomes)} tasks failed; first: {failed[0]['error']}")
    return outcomes


def make_executor(kind: str, folder: str | os.PathLike, resources: Resources):
    """A ``submitit.AutoExecutor`` for ``kind`` with the resources set (each executor uses what applies)."""
    try:
        import submitit
    except ImportError as err:
        raise UnavailableError("`apgbench submit` needs submitit: pip install 'apgbench[slurm]'.") from err
    if kind not in EXECUTORS:
        raise InvalidInputError(executor_problem(kind))
    executor = submitit.AutoExecutor(folder=folder, cluster=kind)
    slurm = {
        "slurm_partition": resources.partition,
        "slurm_array_parallelism": resources.array_parallelism,
        "slurm_additional_parameters": dict(resources.sbatch) or None,
        "slurm_setup": list(resources.setup) or None,
    }
    executor.update_parameters(
        name="apgbench",
        timeout_min=int(resources.time_min),
        mem_gb=resources.mem_gb,
        cpus_per_task=int(resources.cpus),
        gpus_per_node=int(resources.gpus),
        **{k: v for k, v in slurm.items() if v is not None},
    )
    return executor


def submit(
    tasks: list[Task],
    *,
    executor: str = "slurm",
    resources: Resources | None = None,
    results_root: str | os.PathLike | None = None,
    data_root: str | os.PathLike | None = None,
    device: str = "cpu",
    fail_fast: bool = False,
    workers: int | None = None,
    wait: bool = False,
) -> dict[str, Any]:
    """Submit tasks and write the submission record (submission.json); return it (``id``, ``job_ids``, ``tasks``...).

    ``slurm`` makes one array job with one element per task (a family's tasks on one dataset share one, see
    :mod:`apgbench.family`); ``local`` starts ``workers`` processes (default: CPU count), each running its
    share of the tasks in turn; ``debug`` runs everything in this process.
    ``wait`` blocks until all jobs end (always so for ``debug``).
    """
    resources = resources or Resources()
    if problem := executor_problem(executor):
        raise UnavailableError(problem)
    root = Path(_results_root(results_root)).resolve()
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-%f")
    folder = root / SUBMISSIONS / stamp
    created = [p for p in (root, root / SUBMISSIONS) if not p.exists()]  # removed again if nothing is queued
    (folder / "tasks").mkdir(parents=True)
    options = {
        "results_root": str(root),
        "data_root": str(_data_root(data_root).resolve()),
        "device": device,
        "fail_fast": fail_fast,
        "status_dir": str(folder / "tasks"),
        "raise_errors": executor != "debug",
        "image_timeout": resources.image_timeout_s,
    }
    payload = [asdict(t) for t in tasks]
    from .family import task_units

    units = task_units(payload)  # a family's tasks on one dataset go to the same job
    if executor == "local":
        n = max(1, min(workers or os.cpu_count() or 1, len(units)))
        chunks = [[t for unit in units[i::n] for t in unit] for i in range(n)]
    else:
        chunks = units
    submission_record = {
        "id": stamp,
        "created": utc_now(),
        "executor": executor,
        "resources": asdict(resources),
        "options": options,
        "tasks": payload,
        "jobs": [],
    }
    try:
        runner = make_executor(executor, folder / "logs" / "%j", resources)
        jobs = runner.map_array(run_tasks, chunks, [options] * len(chunks)) if chunks else []
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)  # nothing was queued: leave no submission behind
        for path in reversed(created):
            with contextlib.suppress(OSError):  # only if still empty
                path.rmdir()
        raise
    submission_record["jobs"] = [
        {
            "job_id": str(job.job_id),
            "tasks": [t["index"] for t in chunk],
            "stdout": str(job.paths.stdout),
            "stderr": str(job.paths.stderr),
        }
        for job, chunk in zip(jobs, chunks)
    ]
    submission_record["job_ids"] = [j["job_id"] for j in submission_record["jobs"]]
    atomic_write(folder / "submission.json", _json(submission_record))
    if wait or executor == "debug":
        with _closing_log_files():
            for job in jobs:
                with contextlib.suppress(Exception):  # each task's failure is in its status file
                    job.result()
    return submission_record


@contextlib.contextmanager
def _closing_log_files():
    """Close the log files that submitit's debug jobs open (it detaches its handlers but never closes them)."""
    opened, original = [], logging.FileHandler

    class Tracked(original):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            opened.append(self)

    logging.FileHandler = Tracked  # type: ignore[misc]
    try:
        yield
    finally:
        logging.FileHandler = original  # type: ignore[misc]
        for handler in opened:
            handler.close()


def load_submission(
    results_root: str | os.PathLike | None = None, submission: str | None = None
) -> dict | None:
    """A submission (its submission.json) by id (or a unique prefix), else the latest one; None when there is none."""
    base = Path(_results_root(results_root)) / SUBMISSIONS
    found = sorted(p.parent.name for p in base.glob("*/submission.json"))
    if submission:
        found = [s for s in found if s.startswith(submission)]
        if len(found) != 1:
            raise InvalidInputError(
                f"No single submission matches '{submission}' under {base} ({len(found)} match)."
            )
    if not found:
        return None
    submission_record = json.loads((base / found[-1] / "submission.json").read_text())
    for task in submission_record["tasks"]:
        path = Path(submission_record["options"]["status_dir"]) / f"{task['index']:05d}.json"
        task["status"] = json.loads(path.read_text()) if path.exists() else None
    return submission_record


def record_state(directory: str | os.PathLike) -> dict[str, Any]:
    """What a record holds now: ``state`` (missing, running, done, failed, partial, corrupt), counts, problems."""
    directory = Path(directory)
    out: dict[str, Any] = {
        "state": "missing",
        "n_done": 0,
        "n_images": None,
        "n_failed": 0,
        "n_parts": 0,
        "problems": [],
    }
    if not directory.exists():
        return out
    try:
        with FileLock(str(directory / ".lock"), timeout=10):
            recover(directory)
            running = bool(held_claims(directory))
            out["problems"] = check_record(directory)
    except Timeout:
        running = True  # a worker is consolidating it right now
    except CorruptRecordError as err:  # an unreadable journal: the next run repairs it
        running, out["problems"] = False, [str(err)]
    out["n_parts"] = len(list((directory / PARTS).glob("*.npz")))
    if (directory / "run.json").exists() and not out["problems"]:
        info = RunInfo.model_validate_json((directory / "run.json").read_text())
        out.update(
            n_done=info.n_scored + info.n_failed,
            n_images=info.n_images,
            n_failed=info.n_failed,
            tag=getattr(info, "tag", None),
        )
        complete = info.complete and not out["n_parts"] and not (directory / JOURNAL).exists()
        out["state"] = "done" if complete else "partial"
        if complete and info.n_failed and not info.n_scored:  # nothing scored: not "done"
            out.update(state="failed", error=f"all {info.n_failed} images failed (errors in scores.csv)")
    elif out["n_parts"]:
        out["state"] = "partial"
    if out["problems"]:
        out["state"] = "corrupt"
    if running:
        out["state"] = "running"
    return out


def pair_status(tasks: list[dict[str, Any]], submission: dict | None = None) -> list[dict[str, Any]]:
    """One row per record: ``state`` done / running / failed (with ``error``) / queued / partial / corrupt /
    missing, images done and failed, and the job ids that worked on it.
    """
    by_record: dict[str, list[dict[str, Any]]] = {}
    for task in tasks:
        by_record.setdefault(task["record"], []).append(task)
    logs = {i: job for job in (submission or {}).get("jobs", []) for i in job["tasks"]}
    rows = []
    for record, group in by_record.items():
        state = record_state(record)
        statuses = [t.get("status") for t in group]
        failed = [s for s in statuses if s and s["state"] == "failed"]
        died = [t for t, s in zip(group, statuses) if s and s["state"] == "running"]
        row = {
            "dataset": group[0]["dataset"],
            "method": group[0]["method"],
            "run_key": Path(record).name,
            "state": state["state"],
            "done": state["n_done"],
            "images": state["n_images"],
            "failed_images": state["n_failed"],
            "pending_parts": state["n_parts"],
            "error": "",
            "tag": state.get("tag"),
            "jobs": sorted({logs[t["index"]]["job_id"] for t in group if t["index"] in logs}),
        }
        if state["state"] == "corrupt":
            row["error"] = "; ".join(state["problems"])
        elif state.get("error"):
            row["error"] = state["error"]
        elif state["state"] not in ("running", "done"):
            if failed:
                row.update(state="failed", error=failed[0]["error"])
            elif died:
                log = logs.get(died[0]["index"], {}).get("stderr", "its log")
                row.update(
                    state="failed",
                    error=f"worker stopped without reporting (killed, out of time or memory?); see {log}",
                )
            elif submission and any(s is None for s in statuses):
                row["state"] = "queued"
        rows.append(row)
    return rows


def clear_records(tasks: list[Task]) -> None:
    """Delete the stored results of the tasks' records (``submit --force``), once, before any worker runs."""
    from .results import RecordWriter

    for record in sorted({t.record for t in tasks}):
        with RecordWriter(record) as writer:
            writer.clear()


def _job_id() -> str | None:
    """The job id of this worker as ``sbatch``/submitit name it (``<array>_<index>`` in an array job)."""
    env = os.environ
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    return env.get("SLURM_JOB_ID") or env.get("SUBMITIT_LOCAL_JOB_ID") or env.get("SUBMITIT_DEBUG_JOB_ID")


def _json(data: dict[str, Any]) -> bytes:
    return json.dumps(data, indent=2, default=str).encode()
