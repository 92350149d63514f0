"""One benchmark run: a method on a dataset's test split, scored image by image, resumable.

The method is built and prepared once; each image is segmented, scored and committed to the results store
as soon as it is done. A run that stops (crash, Ctrl-C, kill) resumes with the next image on the next call.
"""

from __future__ import annotations

import os
import resource
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from . import __version__
from .config import results_root as _results_root
from .datasets import DatasetConfig, get_dataset_config, load_dataset
from .methods import Segmenter, get_method
from .metrics import score_image
from .results import RecordWriter, RunInfo, git_revision, now, record_dir, run_key


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


def peak_memory_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024.0 if sys.platform != "darwin" else peak / 2**20


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
        Delete the record's stored results first and recompute everything.
    device : str
        Torch device for deep-learning methods (``cpu``, ``cuda``, ``cuda:1``, ``mps``).
    fail_fast : bool
        Stop at the first image that fails instead of recording its error and going on.
    show_progress : bool
        Show a progress bar on the terminal.

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

    with RecordWriter(directory) as writer:
        if force:
            writer.clear()
        done = writer.done_ids()
        todo = [i for i in image_ids if i not in done]
        started = (writer.previous_info() or {}).get("started") or now()
        info = RunInfo(dataset=dataset, domain=config.domain, method=method, run_key=key, params=resolved,
                       dataset_fingerprint=data.fingerprint(), apgbench_version=__version__,
                       git_revision=git_revision(), device=device, started=started, n_images=len(data))
        n_failed, seconds = 0, float((writer.previous_info() or {}).get("seconds_total", 0.0))
        if todo:
            segmenter = method_cls(**{k: v for k, v in resolved.items()})
            with segmenter:
                segmenter.prepare(device=device, domain=config.domain)
                info.method_info = segmenter.info()
                todo_set = set(todo)
                with _progress(show_progress) as progress:
                    task = progress.add_task(f"{method} on {dataset}", total=len(todo))
                    for sample in data:
                        if sample.image_id not in todo_set:
                            continue
                        row, labels, elapsed = _process(segmenter, sample, dataset, method, key, fail_fast)
                        seconds += elapsed
                        n_failed += row["error"] is not None
                        writer.add(sample.image_id, labels, row)
                        progress.advance(task)
                        todo_set.discard(sample.image_id)
                        if not todo_set:
                            break
        info.seconds_total = seconds
        info.finished = now()
        info.complete = len(writer.done_ids() & set(data.image_ids)) == len(data)
        scores = writer.finalize(info)

    valid = scores[scores["error"].isna() & (scores["n_true"] > 0)]
    return RunSummary(dataset, method, directory, len(image_ids), len(todo), len(image_ids) - len(todo),
                      n_failed, float(valid["msa"].mean()) if len(valid) else None)


def _process(segmenter: Segmenter, sample, dataset: str, method: str, key: str, fail_fast: bool):
    """Segment and score one sample; a failure becomes an error row unless ``fail_fast``."""
    row: dict[str, Any] = {"dataset": dataset, "method": method, "run_key": key, "image_id": sample.image_id}
    start = time.perf_counter()
    try:
        labels = segmenter.segment(sample.image)
    except Exception as err:  # noqa: BLE001 - recorded, see below
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
