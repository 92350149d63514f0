"""One benchmark run: a method on a dataset's test split, scored image by image, resumable.

The method is built and prepared once; each image is segmented, scored and committed to the results store
as soon as it is done. A run that stops (crash, Ctrl-C, kill) resumes with the next image on the next call.
"""

from __future__ import annotations

import contextlib
import os
import platform
import resource
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Iterator
from typing import Any

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from . import __version__
from .config import results_root as _results_root
from .datasets import DatasetConfig, get_dataset_config, load_dataset
from .methods import Segmenter, get_method
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
    """A method's full parameters: defaults, then the dataset's text prompt (concept models), then the user's."""
    resolved = dict(method_cls.default_params)
    if "prompt" in resolved and config.prompt:
        resolved["prompt"] = config.prompt
    resolved.update(params)
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

    Returns
    -------
    RunSummary
    """
    config = get_dataset_config(dataset)
    data = load_dataset(config, data_root)
    method_cls = get_method(method)
    resolved = resolve_params(method_cls, config, params or {})
    key = run_key(resolved, method_cls.default_params)
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
        todo = [i for i in image_ids if i not in done]
        info = RunInfo(dataset=dataset, domain=config.domain, method=method, run_key=key, params=resolved,
                       dataset_fingerprint=fingerprint, apgbench_version=__version__,
                       git_revision=git_revision(), device=device, started=now(), n_images=len(data))
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
                                       show_progress)
        info.finished = now()
        scores = writer.finalize(info, last_only=shard is not None, image_ids=data.image_ids)

    mean = None if scores is None else dataset_mean(scores)  # failed images count 0, as in the report
    return RunSummary(dataset, method, directory, len(image_ids), len(todo), len(image_ids) - len(todo),
                      n_failed, mean, repairs=list(writer.repairs), consolidated=scores is not None)


def _run_images(writer: RecordWriter, segmenter: Segmenter, data, todo: list[str], dataset: str, method: str,
                key: str, fail_fast: bool, show_progress: bool) -> int:
    """Segment, score and commit the ``todo`` images one by one; return how many failed."""
    n_failed, todo_set = 0, set(todo)
    with _progress(show_progress) as progress:
        task = progress.add_task(f"{method} on {dataset}", total=len(todo))
        for sample in _samples(data, todo):
            row, labels, _ = _process(segmenter, sample, dataset, method, key, fail_fast)
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


def _process(segmenter: Segmenter, sample, dataset: str, method: str, key: str, fail_fast: bool):
    """Segment and score one sample; a failure becomes an error row unless ``fail_fast``."""
    row: dict[str, Any] = {"dataset": dataset, "method": method, "run_key": key, "image_id": sample.image_id}
    start = time.perf_counter()
    try:
        labels = segmenter.segment(sample.image)
    except Exception as err:
        if fail_fast:
            raise
        elapsed = time.perf_counter() - start
        message = f"{type(err).__name__}: {err}".splitlines()[0][:500]
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
