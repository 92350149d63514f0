"""``apgbench submit`` and ``apgbench status``: run the benchmark on SLURM / a local pool, and follow it."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from ..errors import InvalidInputError, UnavailableError
from .common import (
    DataRootOption,
    LimitOption,
    MethodsOption,
    ParamOption,
    ResultsRootOption,
    console,
    handle_errors,
    parse_params,
)
from .selection import check_params, parse_pairs, select_datasets, select_methods

STATE_STYLES = {
    "done": "green",
    "running": "cyan",
    "queued": "blue",
    "partial": "yellow",
    "failed": "red",
    "corrupt": "red",
    "missing": "dim",
    "not prepared": "dim",
}


@handle_errors
def submit(
    dataset: Annotated[
        str,
        typer.Option("--dataset", "-d", help="Dataset id(s), comma-separated; 'all', 'builtin' or a domain."),
    ],
    method: MethodsOption,
    param: ParamOption = None,
    limit: LimitOption = None,
    executor: Annotated[
        str,
        typer.Option(
            "--executor", "-e", help="slurm (array job), local (process pool) or debug (in-process)."
        ),
    ] = "slurm",
    profile: Annotated[
        str | None, typer.Option(help="Resources profile: a name in configs/slurm/ or a YAML file.")
    ] = None,
    partition: Annotated[str | None, typer.Option(help="SLURM partition.")] = None,
    gpus: Annotated[int | None, typer.Option(help="GPUs per task.", min=0)] = None,
    cpus: Annotated[int | None, typer.Option(help="CPUs per task.", min=1)] = None,
    mem_gb: Annotated[float | None, typer.Option("--mem-gb", help="Memory per task in GB.")] = None,
    time_min: Annotated[
        int | None, typer.Option("--time", help="Time limit per task in minutes.", min=1)
    ] = None,
    sbatch: Annotated[
        list[str] | None,
        typer.Option("--sbatch", help="Extra sbatch option key=value (repeatable), e.g. account=proj."),
    ] = None,
    shard_size: Annotated[
        int | None, typer.Option("--shard-size", help="Split each pair into tasks of N images.", min=1)
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Local executor: parallel processes (default: CPU count).", min=1)
    ] = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Block until every job has ended.")] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force/--no-force", help="Delete stored results of the selection first, recompute all."
        ),
    ] = False,
    device: Annotated[
        str | None, typer.Option(help="Torch device in the workers (default: cuda if --gpus > 0, else cpu).")
    ] = None,
    fail_fast: Annotated[
        bool, typer.Option("--fail-fast/--no-fail-fast", help="Stop a task at its first failing image.")
    ] = False,
    image_timeout: Annotated[
        float | None,
        typer.Option(
            "--image-timeout",
            help="Seconds one image may take before it is recorded as failed "
            "(default: the profile's image_timeout_s; 0: no limit).",
            min=0,
        ),
    ] = None,
    results_root: ResultsRootOption = None,
    data_root: DataRootOption = None,
) -> None:
    """Queue every (dataset, method) pair, or shards of it, as jobs; complete pairs are skipped."""
    from ..distributed import (
        Resources,
        clear_records,
        executor_problem,
        load_profile,
        plan_tasks,
        record_state,
    )
    from ..distributed import submit as submit_tasks

    if problem := executor_problem(executor):
        raise UnavailableError(problem)
    resources = load_profile(profile) if profile else Resources()
    flags = {
        "partition": partition,
        "gpus": gpus,
        "cpus": cpus,
        "mem_gb": mem_gb,
        "time_min": time_min,
        "image_timeout_s": image_timeout,
    }
    for key, value in flags.items():
        if value is not None:
            setattr(resources, key, value or None if key == "image_timeout_s" else value)
    resources.sbatch.update(parse_pairs(sbatch, "--sbatch"))
    device = device or ("cuda" if resources.gpus else "cpu")
    if device.startswith("cuda") and not resources.gpus:
        resources.gpus = 1  # submitit hides every GPU from a task that asks for none
    params = parse_params(param)
    method_ids = select_methods(method, console)
    check_params(method_ids, params)
    selection = select_datasets(dataset, data_root)
    selection.print_missing(console)
    tasks = plan_tasks(
        selection.ready,
        method_ids,
        params,
        results_root=results_root,
        data_root=data_root,
        limit=limit,
        shard_size=shard_size,
    )
    if force:
        clear_records(tasks)
    complete = {t.record for t in tasks if not limit and record_state(t.record)["state"] == "done"}
    todo = [t for t in tasks if t.record not in complete]
    if complete:
        console.print(f"{len(complete)} pair(s) already complete, skipped (use --force to recompute).")
    if not todo:
        console.print("Nothing to submit.")
        return
    sub = submit_tasks(
        todo,
        executor=executor,
        resources=resources,
        results_root=results_root,
        data_root=data_root,
        device=device,
        fail_fast=fail_fast,
        workers=workers,
        wait=wait,
    )
    ids = sub["job_ids"]
    arrays = {i.split("_")[0] for i in ids}
    if executor == "slurm" and len(arrays) == 1:
        shown = f"array job {arrays.pop()} ({len(ids)} tasks: {ids[0]} ... {ids[-1]})"
    else:
        shown = "job(s) " + ", ".join(ids[:8]) + (f", ... ({len(ids)} jobs)" if len(ids) > 8 else "")
    console.print(f"Submission [bold]{sub['id']}[/] ({executor}): {len(todo)} task(s) in {shown}")
    console.print(
        "Follow it with `apgbench status`; resubmitting the same command redoes only what is missing."
    )


@handle_errors
def status(
    dataset: Annotated[
        str | None, typer.Option("--dataset", "-d", help="Dataset id(s) (default: the submission's).")
    ] = None,
    method: Annotated[
        str | None, typer.Option("--method", "-m", help="Method id(s) (default: the submission's).")
    ] = None,
    param: ParamOption = None,
    submission: Annotated[
        str | None, typer.Option(help="Submission id (or prefix) (default: the latest).")
    ] = None,
    results_root: ResultsRootOption = None,
    data_root: DataRootOption = None,
) -> None:
    """Show per pair: done, running, failed (with the error), queued, partial or missing."""
    from dataclasses import asdict

    from rich.table import Table

    from ..distributed import load_submission, pair_status, plan_tasks

    sub = load_submission(results_root, submission)
    missing: list[tuple[str, str]] = []
    if dataset is not None or method is not None:
        if dataset is None or method is None:
            raise InvalidInputError(
                "Give both --dataset and --method, or neither (then the latest submission is shown)."
            )
        method_ids = select_methods(method, ready_only=False)
        params = parse_params(param)
        check_params(method_ids, params)
        selection = select_datasets(dataset, data_root, strict=False)
        missing = selection.missing
        planned = plan_tasks(
            selection.ready, method_ids, params, results_root=results_root, data_root=data_root
        )
        submitted = [t for t in (sub or {}).get("tasks", []) if t["record"] in {p.record for p in planned}]
        known = {t["record"] for t in submitted}
        tasks = submitted + [{**asdict(p), "index": -1} for p in planned if p.record not in known]
        sub = sub if submitted else None
    elif sub is None:
        raise InvalidInputError("No submission found; give --dataset and --method to check records directly.")
    else:
        tasks = sub["tasks"]
    rows = pair_status(tasks, sub)
    rows += [
        {
            "dataset": d,
            "method": m,
            "run_key": "default",
            "state": "not prepared",
            "done": 0,
            "images": None,
            "failed_images": 0,
            "pending_parts": 0,
            "jobs": [],
            "error": f"run `{command}`",
        }
        for d, command in missing
        for m in method_ids
    ]
    table = Table(title=f"submission {sub['id']}" if sub else "records")
    for column in ("dataset", "method", "state", "images", "failed", "jobs", "error"):
        table.add_column(column, overflow="fold")
    for row in rows:
        style = STATE_STYLES.get(row["state"], "")
        images = f"{row['done']}/{row['images'] if row['images'] is not None else '?'}"
        if row["pending_parts"]:
            images += f" (+{row['pending_parts']} pending)"
        label = (
            row["method"]
            if row["run_key"] == "default"
            else f"{row['method']}[{row.get('tag') or row['run_key']}]"
        )
        table.add_row(
            row["dataset"],
            escape(label),
            f"[{style}]{row['state']}[/]",
            images,
            str(row["failed_images"]),
            ",".join(row["jobs"]),
            escape(row["error"]),
        )
    console.print(table)
    counts = {s: sum(r["state"] == s for r in rows) for s in STATE_STYLES}
    console.print(", ".join(f"{n} {s}" for s, n in counts.items() if n))
