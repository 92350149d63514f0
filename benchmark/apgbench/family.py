"""Family runs: methods that share a model stage compute it once per image (µSAM ais, apg, apg-bd, apg-ref).

A method takes part when its segmenter has ``shared_key()``, ``shared_stage(image)``,
``segment_shared(image, shared)`` and ``share_model(owner)`` (see :class:`apgbench.methods.musam._MicroSam`).
Methods whose ``shared_key`` is equal (same model, checkpoint, tiling, device; same input conversion) form a
family: one model is loaded, each image's shared stage (image encoder + decoder maps) runs once, and every
method of the family that still needs the image consumes it.

Each method keeps its own record, resume, failures and timings. Timing: a method's ``seconds`` in
``scores.csv`` is the shared stage's time **plus** its own stage's time, so it compares with a separate run
of the method; the shared part is stored once more in ``run.json`` under ``family`` (``shared_seconds``,
summed over the images this record computed in family runs), so the family's total cost is
``shared_seconds + sum(own)`` and not the sum of the methods' ``seconds``.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from typing import Any

from . import __version__
from .config import results_root as _results_root
from .datasets import get_dataset_config, load_dataset
from .methods import get_method
from .results import RecordWriter, RunInfo, dataset_mean, git_revision, now, record_dir, run_key
from .runner import (
    ImageTimeout,
    RunSummary,
    _process,
    _progress,
    _samples,
    check_tag,
    check_timeout_supported,
    hardware_info,
    resolve_params,
)

SHARED_API = ("shared_key", "shared_stage", "segment_shared", "share_model")


def can_share(method: str) -> bool:
    """Whether ``method``'s segmenter offers a shared stage."""
    cls = get_method(method)
    return all(hasattr(cls, name) for name in SHARED_API)


def group_methods(methods: list[str], params: dict[str, Any] | None = None,
                  dataset: str | None = None) -> list[list[str]]:
    """Split ``methods`` into families (lists of >= 2 methods sharing a model stage) and single methods.

    Order is kept (a family sits where its first member was). Methods share when their segmenters, built with
    the run's parameters for ``dataset`` (its domain picks the model), report the same ``shared_key``.
    """
    config = get_dataset_config(dataset) if dataset else None
    units: list[list[str]] = []
    by_key: dict[Any, list[str]] = {}
    for method in methods:
        if not can_share(method):
            units.append([method])
            continue
        cls = get_method(method)
        resolved = resolve_params(cls, config, params or {}) if config else {
            **cls.default_params, **{k: v for k, v in (params or {}).items() if k in cls.default_params}}
        segmenter = cls(**resolved)
        segmenter.domain = config.domain if config else None
        key = segmenter.shared_key()
        if key in by_key:
            by_key[key].append(method)
        else:
            by_key[key] = [method]
            units.append(by_key[key])
    return units


class _OwnStage:
    """Adapter so :func:`apgbench.runner._process` runs a method's own stage on a precomputed shared stage."""

    def __init__(self, segmenter, shared) -> None:
        self.segmenter, self.shared = segmenter, shared

    def segment(self, image):
        return self.segmenter.segment_shared(image, self.shared)


class _SharedFailure:
    """Stands in for a method when the shared stage failed: every method records that error."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def segment(self, image):
        raise self.error


def run_family(dataset: str, methods: list[str], *, params: dict[str, Any] | None = None,
               results_root=None, data_root=None, limit: int | None = None, force: bool = False,
               device: str = "cpu", fail_fast: bool = False, show_progress: bool = True,
               shard: tuple[int, int] | None = None, segmenters: dict | None = None,
               image_timeout: float | None = None, tag: str | None = None) -> list[RunSummary]:
    """Run a family of methods on ``dataset``: one shared stage per image, one record per method.

    Options are those of :func:`apgbench.runner.run_benchmark`; returns one summary per method, in order.
    """
    config = get_dataset_config(dataset)
    data = load_dataset(config, data_root)
    if image_timeout is not None:
        check_timeout_supported()
    image_ids = list(data.image_ids)[: limit if limit is not None else None]
    if shard is not None:
        image_ids = image_ids[shard[0]: shard[1]]
    fingerprint = data.fingerprint()
    root = _results_root(results_root)
    members = []
    owned = segmenters if segmenters is not None else {}
    with ExitStack() as stack:
        for method in methods:
            cls = get_method(method)
            resolved = resolve_params(cls, config, params or {})
            key = run_key(resolved, cls.default_params)
            if tag is not None:
                check_tag(root, method, key, tag)
            writer = stack.enter_context(RecordWriter(record_dir(root, method, dataset, key), shard=shard))
            if force:
                writer.clear()
            done = writer.done_ids()
            writer.check_provenance(dataset_fingerprint=fingerprint, params=resolved)
            previous = writer.previous_info() or {}
            stored_tag = previous.get("tag")
            if tag and stored_tag and stored_tag != tag:
                raise ValueError(f"{writer.directory} is tagged '{stored_tag}'; use --tag {stored_tag}, or --force "
                                 "to recompute it under a new tag.")
            info = RunInfo(dataset=dataset, domain=config.domain, method=method, run_key=key, params=resolved,
                           dataset_fingerprint=fingerprint, apgbench_version=__version__,
                           git_revision=git_revision(), device=device, started=now(), n_images=len(data))
            if tag or stored_tag:
                info.tag = tag or stored_tag
            todo = {i for i in image_ids if i not in done}
            members.append({"method": method, "key": key, "writer": writer, "info": info, "todo": todo,
                            "n_todo": len(todo), "n_failed": 0, "shared": previous.get("family", {}),
                            "resolved": resolved})
        active = [m for m in members if m["todo"]]
        if active:
            if segmenters is None:
                stack.callback(lambda: [s.close() for s in owned.values()])
            _prepare(active, owned, device, config.domain)
            _run_images(active, data, [i for i in image_ids if any(i in m["todo"] for m in active)], dataset,
                        fail_fast, show_progress, image_timeout)
        summaries = []
        for m in members:
            info = m["info"]
            info.finished = now()
            if m["n_todo"]:
                shared = m["shared"]
                info.family = {"methods": list(methods), "shared_seconds":
                               float(shared.get("shared_seconds", 0.0)) + m.get("shared_seconds", 0.0),
                               "seconds": "shared stage + own stage (shared_seconds counted in each method)"}
            elif m["shared"]:
                info.family = m["shared"]
            scores = m["writer"].finalize(info, last_only=shard is not None, image_ids=data.image_ids)
            summaries.append(_summary(dataset, m, scores, len(image_ids)))
    return summaries


def _prepare(active: list[dict], segmenters: dict, device: str, domain: str | None) -> None:
    """Build each method (cached across datasets), load the model once and let the others share it."""
    owner = None
    for m in active:
        cache_key = (m["method"], m["key"])
        if cache_key not in segmenters:
            segmenters[cache_key] = get_method(m["method"])(**m["resolved"])
        segmenter = m["segmenter"] = segmenters[cache_key]
        if owner is None:
            owner = segmenter
            owner.prepare(device=device, domain=domain)
        else:
            segmenter.device, segmenter.domain = device, domain
            segmenter.share_model(owner)
        m["info"].method_info = segmenter.info()
        m["info"].hardware = hardware_info(device)
        m["writer"].check_provenance(method_info=m["info"].method_info)
        m["writer"].worker = {"hardware": m["info"].hardware, "git_revision": m["info"].git_revision,
                              "apgbench_version": __version__, "device": device}


def _run_images(active, data, todo, dataset, fail_fast, show_progress, image_timeout) -> None:
    """Per image: the shared stage once (timed), then each method's own stage, scored and committed."""
    from .runner import time_limit

    owner = active[0]["segmenter"]
    with _progress(show_progress) as progress:
        task = progress.add_task(f"{'+'.join(m['method'] for m in active)} on {dataset}", total=len(todo))
        for sample in _samples(data, todo):
            start = time.perf_counter()
            try:
                with time_limit(image_timeout):
                    shared = owner.shared_stage(sample.image)
                stage = None
            except (Exception, SystemExit, ImageTimeout) as err:
                if fail_fast:
                    raise
                shared, stage = None, err
            shared_seconds = time.perf_counter() - start
            for m in active:
                if sample.image_id not in m["todo"]:
                    continue
                left = None if image_timeout is None else max(image_timeout - shared_seconds, 1e-3)
                runner = _SharedFailure(stage) if stage is not None else _OwnStage(m["segmenter"], shared)
                row, labels, _ = _process(runner, sample, dataset, m["method"], m["key"], fail_fast, left)
                row["seconds"] += shared_seconds  # comparable with a separate run (see module notes)
                m["n_failed"] += row["error"] is not None
                m["shared_seconds"] = m.get("shared_seconds", 0.0) + shared_seconds
                m["writer"].add(sample.image_id, labels, row)
                m["todo"].discard(sample.image_id)
            del shared
            progress.advance(task)


def _summary(dataset: str, m: dict, scores, n_images: int) -> RunSummary:
    mean, totals, first_error = None, (0, 0), None
    if scores is not None:
        failed = scores["error"].notna()
        mean = dataset_mean(scores)
        totals = (int((~failed).sum()), int(failed.sum()))
        first_error = str(scores.loc[failed, "error"].iloc[0]) if failed.any() else None
    writer = m["writer"]
    return RunSummary(dataset, m["method"], writer.directory, n_images, m["n_todo"], n_images - m["n_todo"],
                      m["n_failed"], mean, repairs=list(writer.repairs), consolidated=scores is not None,
                      n_scored_total=totals[0], n_failed_total=totals[1], first_error=first_error,
                      tag=getattr(m["info"], "tag", None))


def task_units(tasks: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Submitted tasks (``asdict(Task)``) grouped into units a worker runs together.

    Tasks of one family on the same dataset, shard, limit and parameters form one unit (one shared stage
    per image for all of them); every other task is a unit of its own. Order follows the first task of each.
    """
    import json

    buckets: dict[str, list[dict[str, Any]]] = {}
    for task in tasks:
        key = json.dumps([task["dataset"], task["params"], task["limit"], task["shard"]], sort_keys=True, default=str)
        buckets.setdefault(key, []).append(task)
    units: list[list[dict[str, Any]]] = []
    placed: set[int] = set()
    for task in tasks:
        if task["index"] in placed:
            continue
        bucket = buckets[json.dumps([task["dataset"], task["params"], task["limit"], task["shard"]],
                                    sort_keys=True, default=str)]
        by_method = {t["method"]: t for t in bucket}
        for group in group_methods(list(by_method), task["params"], task["dataset"]):
            if task["method"] in group:
                unit = [by_method[m] for m in group if by_method[m]["index"] not in placed]
                placed.update(t["index"] for t in unit)
                units.append(unit)
    return units
