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

import contextlib
import time
from typing import Any

from . import __version__
from .datasets import get_dataset_config
from .malloc import tune_malloc
from .methods import get_method
from .methods.base import ParameterError
from .plan import RunPlan, plan_run, resolve_params
from .results import RecordWriter, utc_now
from .runner import (
    ImageTimeout,
    RunOptions,
    RunSummary,
    _progress,
    _samples,
    _summary,
    hardware_info,
    process_image,
    time_limit,
)

SHARED_API = ("shared_key", "shared_stage", "segment_shared", "share_model")


def can_share(method: str) -> bool:
    """Whether ``method``'s segmenter offers a shared stage."""
    cls = get_method(method)
    return all(hasattr(cls, name) for name in SHARED_API)


def _shared_key(method: str, params: dict[str, Any], domain: str | None) -> Any:
    segmenter = get_method(method)(**params)  # cheap: the model loads in prepare(), never here
    segmenter.domain = domain
    return segmenter.shared_key()


def group_methods(
    methods: list[str], params: dict[str, Any] | None = None, dataset: str | None = None
) -> list[list[str]]:
    """Split ``methods`` into families (lists of >= 2 methods sharing a model stage) and single methods.

    Order is kept (a family sits where its first member was). Methods share when their segmenters, built with
    the run's parameters for ``dataset`` (its domain picks the model), report the same ``shared_key``.
    """
    config = get_dataset_config(dataset) if dataset else None
    units: list[list[str]] = []
    by_key: dict[Any, list[str]] = {}
    for method in methods:
        if not can_share(method) or (config is not None and config.volumetric):
            units.append([method])
            continue
        cls = get_method(method)
        resolved = (
            resolve_params(cls, config, params or {})
            if config
            else {
                **cls.default_params,
                **{k: v for k, v in (params or {}).items() if k in cls.default_params},
            }
        )
        key = _shared_key(method, resolved, config.domain if config else None)
        if key in by_key:
            by_key[key].append(method)
        else:
            by_key[key] = [method]
            units.append(by_key[key])
    return units


def family_units(plans: list[RunPlan]) -> list[list[RunPlan]]:
    """Group plans into families: same dataset, shard and limit, equal ``shared_key``; others stay alone.

    A family sits where its first plan was, so the order of :func:`apgbench.plan.plan_runs` (methods outer)
    is kept as far as possible. Volumetric test sets are never grouped (their 3D modes share nothing).
    """
    units: list[list[RunPlan]] = []
    by_key: dict[Any, list[RunPlan]] = {}
    for plan in plans:
        if plan.method_cls is None or not can_share(plan.method) or plan.config.volumetric:
            units.append([plan])
            continue
        key = (
            plan.dataset,
            plan.shard,
            plan.limit,
            _shared_key(plan.method, plan.params, plan.config.domain),
        )
        if key in by_key:
            by_key[key].append(plan)
        else:
            by_key[key] = [plan]
            units.append(by_key[key])
    return units


class FamilyModels(contextlib.ExitStack):
    """The segmenters of family runs, kept across datasets (a model loads once) and closed at the end."""

    def __init__(self) -> None:
        super().__init__()
        self.segmenters: dict[tuple[str, str], Any] = {}

    def get(self, plan: RunPlan):
        """The segmenter for ``plan``'s method and parameters, built on first use."""
        key = (plan.method, plan.run_key)
        if key not in self.segmenters:
            self.segmenters[key] = self.enter_context(plan.build())
        return self.segmenters[key]


class _OwnStage:
    """Adapter so :func:`apgbench.runner.process_image` runs a method's own stage on a computed shared stage."""

    def __init__(self, segmenter, shared) -> None:
        self.segmenter, self.shared = segmenter, shared

    def segment(self, image, **_: Any):
        return self.segmenter.segment_shared(image, self.shared)


class _SharedFailure:
    """Stands in for a method when the shared stage failed: every method records that error."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def segment(self, image, **_: Any):
        raise self.error


def run_family_ids(
    dataset: str,
    methods: list[str],
    *,
    params: dict[str, Any] | None = None,
    results_root=None,
    data_root=None,
    limit: int | None = None,
    shard: tuple[int, int] | None = None,
    tag: str | None = None,
    **options: Any,
) -> list[RunSummary]:
    """:func:`run_family` by ids (a ``submit`` worker's unit); ``options`` are :class:`RunOptions`' fields."""
    plans = [
        plan_run(
            dataset,
            method,
            params,
            results_root=results_root,
            data_root=data_root,
            limit=limit,
            shard=shard,
            tag=tag,
        )
        for method in methods
    ]
    with FamilyModels() as models:
        return list(run_family(plans, RunOptions(**options), models))


def run_family(plans: list[RunPlan], options: RunOptions, models: FamilyModels) -> list[RunSummary]:
    """Run a family's plans (one dataset): one shared stage per image, one record per method.

    Returns one summary per plan, in order.
    """
    tune_malloc()  # speed only: freed tensor memory is reused (apgbench.malloc)
    with contextlib.ExitStack() as stack:
        members = []
        for plan in plans:
            writer = stack.enter_context(RecordWriter(plan.directory, shard=plan.shard))
            if options.force:
                writer.clear()
            done = writer.done_ids()
            previous = writer.previous_info() or {}
            stored_tag = previous.get("tag")
            if plan.tag and stored_tag and stored_tag != plan.tag:
                raise ParameterError(
                    f"{plan.directory} is tagged '{stored_tag}'; use --tag {stored_tag}, or "
                    "--force to recompute it under a new tag."
                )
            info = plan.run_info(device=options.device)
            if stored_tag and not plan.tag:
                info.tag = stored_tag
            todo = {i for i in plan.image_ids if i not in done}
            members.append(
                {
                    "plan": plan,
                    "writer": writer,
                    "info": info,
                    "todo": todo,
                    "n_todo": len(todo),
                    "n_failed": 0,
                    "shared": previous.get("family", {}),
                }
            )
        active = [m for m in members if m["todo"]]
        if active:
            _prepare(active, models, options.device)
        for m in members:
            info = m["info"]
            m["writer"].start(
                dataset_fingerprint=info.dataset_fingerprint,
                params=m["plan"].params,
                method_info=info.method_info or None,
                worker={
                    "hardware": info.hardware,
                    "git_revision": info.git_revision,
                    "apgbench_version": __version__,
                    "device": options.device,
                },
            )
        if active:
            ids = [i for i in plans[0].image_ids if any(i in m["todo"] for m in active)]
            _run_images(active, ids, options)
        summaries = []
        names = [plan.method for plan in plans]
        for m in members:
            info, plan = m["info"], m["plan"]
            info.finished = utc_now()
            if m["n_todo"]:
                shared = m["shared"]
                info.family = {
                    "methods": names,
                    "shared_seconds": float(shared.get("shared_seconds", 0.0)) + m.get("shared_seconds", 0.0),
                    "seconds": "shared stage + own stage (shared_seconds counted in each method)",
                }
            elif m["shared"]:
                info.family = m["shared"]
            scores = m["writer"].finalize(
                info, last_only=plan.shard is not None, image_ids=plan.data.image_ids
            )
            summaries.append(
                _summary(
                    plan, scores, m["n_todo"], m["n_failed"], m["writer"].repairs, getattr(info, "tag", None)
                )
            )
    return summaries


def _prepare(active: list[dict], models: FamilyModels, device: str) -> None:
    """Build each method (kept across datasets), load the model once and let the others share it."""
    owner = None
    for m in active:
        plan = m["plan"]
        segmenter = m["segmenter"] = models.get(plan)
        if owner is None:
            owner = segmenter
            owner.prepare(device=device, domain=plan.config.domain)
        else:
            segmenter.device, segmenter.domain = device, plan.config.domain
            segmenter.share_model(owner)
        m["info"].method_info, m["info"].hardware = segmenter.info(), hardware_info(device)


def _run_images(active: list[dict], todo: list[str], options: RunOptions) -> None:
    """Per image: the shared stage once (timed), then each method's own stage, scored and committed."""
    owner, first = active[0]["segmenter"], active[0]["plan"]
    with _progress(options.show_progress) as progress:
        label = "+".join(m["plan"].method for m in active)
        task = progress.add_task(f"{label} on {first.dataset}", total=len(todo))
        for sample in _samples(first.data, todo):
            start = time.perf_counter()
            try:
                with time_limit(options.image_timeout):
                    shared = owner.shared_stage(sample.image)
                stage = None
            except (Exception, SystemExit, ImageTimeout) as err:
                if options.fail_fast:
                    raise
                shared, stage = None, err
            shared_seconds = time.perf_counter() - start
            for m in active:
                if sample.image_id not in m["todo"]:
                    continue
                left = (
                    None
                    if options.image_timeout is None
                    else max(options.image_timeout - shared_seconds, 1e-3)
                )
                own = RunOptions(False, options.device, options.fail_fast, False, left)
                runner = _SharedFailure(stage) if stage is not None else _OwnStage(m["segmenter"], shared)
                row, labels, _ = process_image(runner, sample, m["plan"], own)
                row["seconds"] += shared_seconds  # comparable with a separate run (see module notes)
                m["n_failed"] += row["error"] is not None
                m["shared_seconds"] = m.get("shared_seconds", 0.0) + shared_seconds
                m["writer"].add(sample.image_id, labels, row)
                m["todo"].discard(sample.image_id)
            del shared
            progress.advance(task)


def task_units(tasks: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Submitted tasks (``asdict(Task)``) grouped into units a worker runs together.

    Tasks of one family on the same dataset, shard, limit and parameters form one unit (one shared stage
    per image for all of them); every other task is a unit of its own. Order follows the first task of each.
    """
    import json

    buckets: dict[str, list[dict[str, Any]]] = {}
    for task in tasks:
        key = json.dumps(
            [task["dataset"], task["params"], task["limit"], task["shard"]], sort_keys=True, default=str
        )
        buckets.setdefault(key, []).append(task)
    units: list[list[dict[str, Any]]] = []
    placed: set[int] = set()
    for task in tasks:
        if task["index"] in placed:
            continue
        bucket = buckets[
            json.dumps(
                [task["dataset"], task["params"], task["limit"], task["shard"]], sort_keys=True, default=str
            )
        ]
        by_method = {t["method"]: t for t in bucket}
        for group in group_methods(list(by_method), task["params"], task["dataset"]):
            if task["method"] in group:
                unit = [by_method[m] for m in group if by_method[m]["index"] not in placed]
                placed.update(t["index"] for t in unit)
                units.append(unit)
    return units
