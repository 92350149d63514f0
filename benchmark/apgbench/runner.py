"""One benchmark run: a method on a dataset's test split, scored image by image, resumable.

Each (dataset, method) pair is planned first (:mod:`apgbench.plan`); the method is built and prepared once;
each image is segmented, scored and committed to the results store
as soon as it is done. A run that stops (crash, Ctrl-C, kill) resumes with the next image on the next call.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import resource
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from . import __version__
from .errors import InvalidInputError, UnavailableError
from .malloc import malloc_setting, tune_malloc
from .methods import ParameterError, Segmenter
from .metrics import score_image
from .plan import RunPlan, plan_run, plan_runs, resolve_params  # noqa: F401 - resolve_params: public here too
from .results import RecordWriter, dataset_mean, utc_now


@dataclass
class RunSummary:
    """What a run did: where its record is and how many images it scored, skipped and failed."""

    dataset: str
    method: str
    directory: Path
    n_images: int
    n_new: int
    n_skipped: int
    n_failed: int
    mean_msa: float | None
    repairs: list[str] = field(default_factory=list)
    consolidated: bool = True
    n_scored_total: int = 0
    n_failed_total: int = 0
    first_error: str | None = None
    tag: str | None = None

    @property
    def all_failed(self) -> bool:
        """True when the record holds failures and no scored image at all."""
        return self.n_failed_total > 0 and self.n_scored_total == 0


class ImageTimeout(BaseException):
    """An image ran past ``image_timeout``.

    A ``BaseException``, so a method's own ``except Exception`` cannot swallow it; the runner records it.
    """


def check_timeout_supported() -> None:
    """Raise :class:`~apgbench.errors.UnavailableError` unless a per-image time limit can work here.

    It needs SIGALRM and the main thread of a process.
    """
    if not hasattr(signal, "setitimer"):
        raise UnavailableError("--image-timeout needs SIGALRM, which this platform lacks; run without it.")
    if threading.current_thread() is not threading.main_thread():
        raise UnavailableError("--image-timeout works only in the main thread of a process; run without it.")


@contextlib.contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise :class:`ImageTimeout` in the block if it runs longer than ``seconds`` (None: no limit).

    Why SIGALRM: a thread running a Python call cannot be stopped from outside, and a subprocess per image
    would have to load the model again. The alarm interrupts the main thread between two Python bytecodes,
    so a single long call into C/CUDA code ends first; methods run many such calls per image, so the image
    stops within one of them. The handler raises only while the block is active, and the timer is cleared
    and the previous handler restored even when the alarm fires during cleanup.
    """
    if not seconds:
        yield
        return
    active = [True]

    def on_alarm(signum: int, frame: object) -> None:
        if active[0]:
            raise ImageTimeout(f"timed out after {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        try:
            active[0] = False
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


def peak_memory_mb() -> float:
    """Peak resident memory of this process, in MiB.

    Since the last :func:`reset_peak_memory` where Linux allows the reset (``VmHWM``), else since the process
    started.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024.0 if sys.platform != "darwin" else peak / 2**20


def reset_peak_memory() -> bool:
    """Start a new peak-memory window (Linux: ``echo 5 > /proc/self/clear_refs``); False where unsupported.

    Used per volume, so that a volume's ``peak_mem_mb`` is its own peak, not the largest one before it.
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def hardware_info(device: str | None = None) -> dict[str, Any]:
    """Host, CPU model and count, memory, SLURM job, allocator tuning and, if torch is imported, the GPU.

    torch is never imported here: a run of a CPU method stays light, and a GPU method has imported it.
    """
    info: dict[str, Any] = {
        "host": platform.node(),
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
    }
    try:
        info["memory_gb"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    for key in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        if key in os.environ:
            info[key.lower()] = os.environ[key]
    if malloc_setting():
        info["malloc"] = malloc_setting()
    torch = sys.modules.get("torch")
    if torch is not None:
        with contextlib.suppress(Exception):  # provenance must never break a run
            if torch.cuda.is_available():
                index = torch.device(device).index if device and str(device).startswith("cuda") else None
                info["gpu"] = torch.cuda.get_device_name(index or 0)
                info["cuda"] = torch.version.cuda
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


@dataclass(frozen=True)
class RunOptions:
    """How plans are executed (not what they compute: that is the :class:`~apgbench.plan.RunPlan`)."""

    force: bool = False
    device: str = "cpu"
    fail_fast: bool = False
    show_progress: bool = True
    image_timeout: float | None = None

    def __post_init__(self) -> None:
        timeout = self.image_timeout
        if timeout is not None:
            if not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout > 0):
                raise InvalidInputError(
                    f"The image timeout must be a positive number of seconds, got {timeout!r}."
                )
            check_timeout_supported()


class Segmenters:
    """The segmenter in use, built when a plan first needs one and closed when the next plan needs another.

    A context manager (an :class:`~contextlib.ExitStack` inside): leaving it closes the last segmenter,
    whatever happened. Plans of the same method and parameters share one segmenter, whose ``prepare`` loads
    a model only when the device or the domain's model changes.
    """

    def __init__(self) -> None:
        self._stack = contextlib.ExitStack()
        self._key: tuple[str, str] | None = None
        self._segmenter: Segmenter | None = None

    def get(self, plan: RunPlan) -> Segmenter:
        """The segmenter for ``plan``'s method and parameters (the previous one is closed if they differ)."""
        key = (plan.method, plan.run_key)
        if key != self._key or self._segmenter is None:
            self.close()
            self._segmenter = self._stack.enter_context(plan.build())
            self._key = key
        return self._segmenter

    def close(self) -> None:
        """Close the segmenter in use, if any."""
        self._key, self._segmenter = None, None
        self._stack.close()

    def __enter__(self) -> Segmenters:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_benchmark(
    dataset: str,
    method: str,
    *,
    params: dict[str, Any] | None = None,
    results_root: str | os.PathLike | None = None,
    data_root: str | os.PathLike | None = None,
    limit: int | None = None,
    force: bool = False,
    device: str = "cpu",
    fail_fast: bool = False,
    show_progress: bool = True,
    shard: tuple[int, int] | None = None,
    image_timeout: float | None = None,
    tag: str | None = None,
) -> RunSummary:
    """Run ``method`` on ``dataset`` and store predictions and scores.

    Parameters
    ----------
    dataset, method : str
        Registered ids.
    params : dict, optional
        Method parameters that differ from its defaults; they select the record (``run_key``).
    results_root, data_root : path, optional
        Store and data cache roots (defaults from the environment, see :mod:`apgbench.config`).
    limit : int, optional
        Score only the first ``limit`` images (smoke runs); a later run without it completes the record.
    force : bool
        Delete the record's stored results first and recompute everything; also needed to replace results
        computed on another version of the dataset or of the method (otherwise
        :class:`~apgbench.results.RecordMismatchError`).
    device : str
        Torch device for deep-learning methods (``cpu``, ``cuda``, ``cuda:1``, ``mps``).
    fail_fast : bool
        Stop at the first image that fails instead of recording its error and going on.
    show_progress : bool
        Show a progress bar on the terminal.
    shard : (int, int), optional
        Only the images with index in ``[start, stop)`` (after ``limit``). Workers on disjoint shards of a
        record run side by side; the last one to finish consolidates the record.
    image_timeout : float, optional
        Seconds an image may take to segment; a slower image is recorded as failed ("timed out after N s")
        and the run goes on (see :func:`time_limit`). Off by default.
    tag : str, optional
        A name for a run with non-default parameters (``lowthresh``): stored in ``run.json``, reports show
        ``method[tag]`` instead of the run key. One tag per parameter set of a method.

    Returns
    -------
    RunSummary
    """
    options = RunOptions(force, device, fail_fast, show_progress, image_timeout)
    plan = plan_run(
        dataset,
        method,
        params,
        results_root=results_root,
        data_root=data_root,
        limit=limit,
        shard=shard,
        tag=tag,
    )
    with Segmenters() as segmenters:
        return run_plan(plan, options, segmenters)


def run_plan(plan: RunPlan, options: RunOptions, segmenters: Segmenters) -> RunSummary:
    """Compute what ``plan``'s record still lacks and consolidate it; the segmenter comes from ``segmenters``.

    The provenance (dataset fingerprint, parameters, method info) is checked once against the stored
    results, after the method is prepared, and the writer stamps it on every image it commits.
    """
    tune_malloc()  # speed only: freed tensor memory is reused (apgbench.malloc)
    with RecordWriter(plan.directory, shard=plan.shard) as writer:
        if options.force:
            writer.clear()
        done = writer.done_ids()
        stored_tag = (writer.previous_info() or {}).get("tag")
        if plan.tag and stored_tag and stored_tag != plan.tag:
            raise ParameterError(
                f"{plan.directory} is tagged '{stored_tag}'; use --tag {stored_tag}, or --force "
                "to recompute it under a new tag."
            )
        todo = [i for i in plan.image_ids if i not in done]
        info = plan.run_info(device=options.device)
        if stored_tag and not plan.tag:
            info.tag = stored_tag  # a resumed run keeps the record's tag
        segmenter = None
        if todo:
            segmenter = segmenters.get(plan)
            segmenter.prepare(device=options.device, domain=plan.config.domain)
            info.method_info, info.hardware = segmenter.info(), hardware_info(options.device)
        writer.start(
            dataset_fingerprint=info.dataset_fingerprint,
            params=plan.params,
            method_info=info.method_info or None,
            worker={
                "hardware": info.hardware,
                "git_revision": info.git_revision,
                "apgbench_version": __version__,
                "device": options.device,
            },
        )
        n_failed = run_images(writer, segmenter, plan, todo, options) if segmenter is not None else 0
        info.finished = utc_now()
        scores = writer.finalize(info, last_only=plan.shard is not None, image_ids=plan.data.image_ids)
    return _summary(plan, scores, len(todo), n_failed, writer.repairs, getattr(info, "tag", None))


def _summary(
    plan: RunPlan, scores, n_new: int, n_failed: int, repairs: list[str], tag: str | None
) -> RunSummary:
    mean, totals, first_error = None, (0, 0), None
    if scores is not None:
        failed = scores["error"].notna()
        mean = dataset_mean(scores)  # failed images count 0, as in the report
        totals = (int((~failed).sum()), int(failed.sum()))
        first_error = str(scores.loc[failed, "error"].iloc[0]) if failed.any() else None
    n = len(plan.image_ids)
    return RunSummary(
        plan.dataset,
        plan.method,
        plan.directory,
        n,
        n_new,
        n - n_new,
        n_failed,
        mean,
        repairs=list(repairs),
        consolidated=scores is not None,
        n_scored_total=totals[0],
        n_failed_total=totals[1],
        first_error=first_error,
        tag=tag,
    )


def run_images(
    writer: RecordWriter, segmenter: Segmenter, plan: RunPlan, todo: list[str], options: RunOptions
) -> int:
    """Segment, score and commit the ``todo`` images of ``plan`` one by one; return how many failed."""
    n_failed, todo_set = 0, set(todo)
    volumes = (plan.segment_kwargs or {}).get("ndim") == 3
    with _progress(options.show_progress) as progress:
        task = progress.add_task(f"{plan.method} on {plan.dataset}", total=len(todo))
        if volumes:  # slice-wise methods report each z slice (Segmenter.slice_progress)
            slices = progress.add_task("  slices", total=None)
            segmenter.slice_progress = lambda done, total: progress.update(
                slices, completed=done, total=total
            )
        for sample in _samples(plan.data, todo):
            if volumes:
                progress.update(slices, completed=0, total=None)
                reset_peak_memory()
            row, labels, _ = process_image(segmenter, sample, plan, options)
            n_failed += row["error"] is not None
            writer.add(sample.image_id, labels, row)
            progress.advance(task)
            todo_set.discard(sample.image_id)
            if not todo_set:
                break
    if volumes:
        segmenter.slice_progress = None  # the bar is gone; a cached segmenter may run 2D images next
    return n_failed


#: Below this share of the test split, the images to do are read one by one (random access, e.g. a shard or
#: a resume); above it, one sequential pass over the dataset is faster than seeking.
RANDOM_ACCESS_SHARE = 0.25


def _samples(data, todo: list[str]):
    """The samples of ``todo``: random access for a small subset (a shard, a resume), else one pass."""
    if len(todo) < RANDOM_ACCESS_SHARE * len(data):
        return (data.get(image_id) for image_id in todo)
    wanted = set(todo)
    return (sample for sample in data if sample.image_id in wanted)


def process_image(segmenter: Segmenter, sample, plan: RunPlan, options: RunOptions):
    """Segment and score one sample: ``(row, labels or None, seconds)``; a failure becomes an error row
    unless ``options.fail_fast``.

    Failures include a method calling ``sys.exit`` (``SystemExit``) and an image past ``image_timeout``;
    Ctrl-C (``KeyboardInterrupt``) still stops the run, which resumes on the next call.
    """
    row: dict[str, Any] = {
        "dataset": plan.dataset,
        "method": plan.method,
        "run_key": plan.run_key,
        "image_id": sample.image_id,
    }
    start = time.perf_counter()
    try:
        with time_limit(options.image_timeout):
            labels = segmenter.segment(sample.image, **plan.segment_kwargs)
    except (Exception, SystemExit, ImageTimeout) as err:
        if options.fail_fast:
            raise
        elapsed = time.perf_counter() - start
        row.update(
            seconds=elapsed,
            peak_mem_mb=peak_memory_mb(),
            error=error_line(err),
            n_true=int(np.count_nonzero(np.unique(sample.labels))),
            n_pred=0,
        )
        traceback.print_exc(limit=3)
        return row, None, elapsed
    elapsed = time.perf_counter() - start
    row.update(score_image(sample.labels, labels))
    row.update(seconds=elapsed, peak_mem_mb=peak_memory_mb(), error=None)
    return row, labels, elapsed


#: Longest error message stored per image (scores.csv, status files): the first line, cut to this length.
MAX_ERROR_CHARS = 500


def error_line(err: BaseException) -> str:
    """``Type: message`` of an exception, its first line only, at most :data:`MAX_ERROR_CHARS` long."""
    return (f"{type(err).__name__}: {err}".splitlines() or [type(err).__name__])[0][:MAX_ERROR_CHARS]


class _NullProgress:
    def __enter__(self) -> _NullProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_task(self, *args: Any, **kwargs: Any) -> int:
        return 0

    def advance(self, *args: Any) -> None:
        return None

    def update(self, *args: Any, **kwargs: Any) -> None:
        return None


def _progress(show: bool):
    if not show:
        return _NullProgress()
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        transient=False,
    )


def run_many(
    datasets: list[str],
    methods: list[str],
    *,
    params: dict[str, Any] | None = None,
    results_root: str | os.PathLike | None = None,
    data_root: str | os.PathLike | None = None,
    limit: int | None = None,
    tag: str | None = None,
    family: bool = True,
    **options: Any,
) -> Iterator[RunSummary]:
    """Run every method on every dataset, building each method once and loading its model only when needed.

    Every pair is planned (and so checked) before the first one runs. Methods are the outer loop, so a model
    (e.g. µSAM's ViT-B) is loaded once for all datasets it serves instead of once per dataset; the segmenters
    are closed when the loop ends, however it ends. With ``family`` (default), methods sharing a model stage
    run together on each dataset (:mod:`apgbench.family`): one shared stage per image, one record per
    method. ``options`` are :class:`RunOptions`' fields.
    """
    from .family import FamilyModels, family_units, run_family

    run_options = RunOptions(**options)
    plans = plan_runs(
        datasets, methods, params, results_root=results_root, data_root=data_root, limit=limit, tag=tag
    )
    units = family_units(plans) if family else [[plan] for plan in plans]
    with Segmenters() as segmenters, FamilyModels() as models:
        for unit in units:
            if len(unit) > 1:
                yield from run_family(unit, run_options, models)
            else:
                yield run_plan(unit[0], run_options, segmenters)
