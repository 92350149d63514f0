"""One benchmark run: a method on a dataset's test split, scored image by image, resumable.

The method is built and prepared once; each image is segmented, scored and committed to the results store
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
from .config import ID_PATTERN
from .config import results_root as _results_root
from .datasets import DatasetConfig, get_dataset_config, load_dataset
from .methods import Segmenter, check_params, get_method
from .metrics import score_image
from .results import RecordWriter, RunInfo, dataset_mean, git_revision, now, record_dir, run_key


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
    """Raise ``RuntimeError`` unless a per-image time limit can work here (SIGALRM, main thread)."""
    if not hasattr(signal, "setitimer"):
        raise RuntimeError("--image-timeout needs SIGALRM, which this platform lacks; run without it.")
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("--image-timeout works only in the main thread of a process; run without it.")


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
    """Peak resident memory of this process so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024.0 if sys.platform != "darwin" else peak / 2**20


def hardware_info(device: str | None = None) -> dict[str, Any]:
    """Host, CPU model and count, memory, SLURM job and, if torch is already imported, the GPU.

    torch is never imported here: a run of a CPU method stays light, and a GPU method has imported it.
    """
    info: dict[str, Any] = {"host": platform.node(), "machine": platform.machine(), "cpu": _cpu_model(),
                            "cpu_count": os.cpu_count()}
    try:
        info["memory_gb"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    for key in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        if key in os.environ:
            info[key.lower()] = os.environ[key]
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


def resolve_params(method_cls: type[Segmenter], config: DatasetConfig, params: dict[str, Any]) -> dict[str, Any]:
    """A method's full parameters: defaults, then the dataset's text prompt (concept models), then the user's.

    The user's values are type-checked and normalised first (:func:`~apgbench.methods.check_params`), so a
    bad value fails before any record exists and ``sigma=1`` selects the same record as the default ``1.0``.
    """
    resolved = dict(method_cls.default_params)
    if "prompt" in resolved and config.prompt:
        resolved["prompt"] = config.prompt
    resolved.update(check_params(method_cls.name, method_cls.default_params, params))
    return resolved


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
    segmenters: dict[tuple[str, str], Segmenter] | None = None,
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
    segmenters : dict, optional
        A cache the caller keeps across calls (see :func:`run_many`): a method built for one dataset is
        reused for the next one with the same parameters, and its model is loaded only when it must change.
        The caller closes the cached segmenters.
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
    config = get_dataset_config(dataset)
    data = load_dataset(config, data_root)
    method_cls = get_method(method)
    resolved = resolve_params(method_cls, config, params or {})
    volume_kwargs: dict[str, Any] = {}
    if config.volumetric:  # a 3D test set: whole volumes, scored in 3D; a 2D-only method needs stitch=...
        method_cls.volume_mode(resolved)
        volume_kwargs = {"ndim": 3, "spacing": config.voxel_size}
    key = run_key(resolved, method_cls.default_params)
    if image_timeout is not None:
        if not (isinstance(image_timeout, (int, float)) and math.isfinite(image_timeout) and image_timeout > 0):
            raise ValueError(f"The image timeout must be a positive number of seconds, got {image_timeout!r}.")
        check_timeout_supported()
    if tag is not None:
        check_tag(_results_root(results_root), method, key, tag)
    directory = record_dir(_results_root(results_root), method, dataset, key)
    image_ids = list(data.image_ids)[: limit if limit is not None else None]
    if shard is not None:
        image_ids = image_ids[shard[0]: shard[1]]
    fingerprint = data.fingerprint()

    with RecordWriter(directory, shard=shard) as writer:
        if force:
            writer.clear()
        done = writer.done_ids()
        writer.check_provenance(dataset_fingerprint=fingerprint, params=resolved)
        stored_tag = (writer.previous_info() or {}).get("tag")
        if tag and stored_tag and stored_tag != tag:
            raise ValueError(f"{directory} is tagged '{stored_tag}'; use --tag {stored_tag}, or --force to "
                             "recompute it under a new tag.")
        todo = [i for i in image_ids if i not in done]
        info = RunInfo(dataset=dataset, domain=config.domain, method=method, run_key=key, params=resolved,
                       dataset_fingerprint=fingerprint, apgbench_version=__version__,
                       git_revision=git_revision(), device=device, started=now(), n_images=len(data))
        if tag or stored_tag:
            info.tag = tag or stored_tag  # run.json allows extra fields: the layout is unchanged
        n_failed = 0
        if todo:
            cache_key = (method, key)
            cached = segmenters is not None and cache_key in segmenters
            segmenter = segmenters[cache_key] if cached else method_cls(**resolved)
            if segmenters is not None:
                segmenters[cache_key] = segmenter
            with contextlib.nullcontext(segmenter) if segmenters is not None else segmenter:
                segmenter.prepare(device=device, domain=config.domain)
                info.method_info = segmenter.info()
                info.hardware = hardware_info(device)
                writer.check_provenance(method_info=info.method_info)
                writer.worker = {"hardware": info.hardware, "git_revision": info.git_revision,
                                 "apgbench_version": __version__, "device": device}
                n_failed = _run_images(writer, segmenter, data, todo, dataset, method, key, fail_fast,
                                       show_progress, image_timeout, volume_kwargs)
        info.finished = now()
        scores = writer.finalize(info, last_only=shard is not None, image_ids=data.image_ids)

    mean, totals, first_error = None, (0, 0), None
    if scores is not None:
        failed = scores["error"].notna()
        mean = dataset_mean(scores)  # failed images count 0, as in the report
        totals = (int((~failed).sum()), int(failed.sum()))
        first_error = str(scores.loc[failed, "error"].iloc[0]) if failed.any() else None
    return RunSummary(dataset, method, directory, len(image_ids), len(todo), len(image_ids) - len(todo),
                      n_failed, mean, repairs=list(writer.repairs), consolidated=scores is not None,
                      n_scored_total=totals[0], n_failed_total=totals[1], first_error=first_error,
                      tag=getattr(info, "tag", None))


def check_tag(results_root: Path, method: str, key: str, tag: str) -> None:
    """Refuse a tag that is malformed, names default parameters, or names another parameter set."""
    import json

    if not ID_PATTERN.match(tag):
        raise ValueError(f"Tag '{tag}' must be lower-case letters, digits, dots and dashes (e.g. lowthresh).")
    if key == "default":
        raise ValueError(f"--tag {tag} names a run with non-default parameters; these are the defaults.")
    for path in Path(results_root, method).glob("*/*/run.json"):
        try:
            other = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # an unreadable record is the report's and `status`'s to flag
        if other.get("tag") == tag and other.get("run_key") != key:
            raise ValueError(f"Tag '{tag}' already names other parameters of '{method}' "
                             f"({path.parent}); choose another tag.")


def _run_images(writer: RecordWriter, segmenter: Segmenter, data, todo: list[str], dataset: str, method: str,
                key: str, fail_fast: bool, show_progress: bool, image_timeout: float | None = None,
                segment_kwargs: dict[str, Any] | None = None) -> int:
    """Segment, score and commit the ``todo`` images one by one; return how many failed."""
    n_failed, todo_set = 0, set(todo)
    with _progress(show_progress) as progress:
        task = progress.add_task(f"{method} on {dataset}", total=len(todo))
        for sample in _samples(data, todo):
            row, labels, _ = _process(segmenter, sample, dataset, method, key, fail_fast, image_timeout,
                                      segment_kwargs)
            n_failed += row["error"] is not None
            writer.add(sample.image_id, labels, row)
            progress.advance(task)
            todo_set.discard(sample.image_id)
            if not todo_set:
                break
    return n_failed


def _samples(data, todo: list[str]):
    """The samples of ``todo``: random access for a small subset (a shard, a resume), else one pass."""
    if len(todo) * 4 < len(data):
        return (data.get(image_id) for image_id in todo)
    wanted = set(todo)
    return (sample for sample in data if sample.image_id in wanted)


def _process(segmenter: Segmenter, sample, dataset: str, method: str, key: str, fail_fast: bool,
             image_timeout: float | None = None, segment_kwargs: dict[str, Any] | None = None):
    """Segment and score one sample (a volume with ``ndim``/``spacing`` in ``segment_kwargs``); a failure
    becomes an error row unless ``fail_fast``.

    Failures include a method calling ``sys.exit`` (``SystemExit``) and an image past ``image_timeout``;
    Ctrl-C (``KeyboardInterrupt``) still stops the run, which resumes on the next call.
    """
    row: dict[str, Any] = {"dataset": dataset, "method": method, "run_key": key, "image_id": sample.image_id}
    start = time.perf_counter()
    try:
        with time_limit(image_timeout):
            labels = segmenter.segment(sample.image, **(segment_kwargs or {}))
    except (Exception, SystemExit, ImageTimeout) as err:
        if fail_fast:
            raise
        elapsed = time.perf_counter() - start
        message = (f"{type(err).__name__}: {err}".splitlines() or [type(err).__name__])[0][:500]
        row.update(seconds=elapsed, peak_mem_mb=peak_memory_mb(), error=message,
                   n_true=int(np.count_nonzero(np.unique(sample.labels))), n_pred=0)
        traceback.print_exc(limit=3)
        return row, None, elapsed
    elapsed = time.perf_counter() - start
    row.update(score_image(sample.labels, labels))
    row.update(seconds=elapsed, peak_mem_mb=peak_memory_mb(), error=None)
    return row, labels, elapsed


class _NullProgress:
    def __enter__(self) -> _NullProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_task(self, *args: Any, **kwargs: Any) -> int:
        return 0

    def advance(self, *args: Any) -> None:
        return None


def _progress(show: bool):
    if not show:
        return _NullProgress()
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    transient=False)


def run_many(datasets: list[str], methods: list[str], **options: Any) -> Iterator[RunSummary]:
    """Run every method on every dataset, building each method once and loading its model only when needed.

    Methods are the outer loop, so a model (e.g. µSAM's ViT-B) is loaded once for all datasets it serves
    instead of once per dataset. ``options`` are those of :func:`run_benchmark`.
    """
    for method in methods:
        segmenters: dict[tuple[str, str], Segmenter] = {}
        try:
            for dataset in datasets:
                yield run_benchmark(dataset, method, segmenters=segmenters, **options)
        finally:
            for segmenter in segmenters.values():
                segmenter.close()
