"""Run plans: everything a run decides before it segments an image, built once and checked once.

A :class:`RunPlan` names one record: the dataset config, the method class, its resolved and validated
parameters, the run key, the record folder, the images to cover (after ``limit`` and a shard) and the tag.
``apgbench run`` (:func:`apgbench.runner.run_plan`), ``submit``/``status`` (:mod:`apgbench.distributed`) and
``evaluate`` all start from a plan, so the rules for ids, parameters, keys and folders live here only.
:func:`expand_methods` is the one place where a ``--method`` selection (``all`` included) becomes ids.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from . import __version__
from .config import ID_PATTERN
from .config import results_root as _results_root
from .datasets import DatasetConfig, get_dataset_config, load_dataset
from .methods import MethodUnavailableError, ParameterError, Segmenter, get_method
from .results import RunInfo, git_revision, record_dir, run_key, utc_now


@dataclass(frozen=True)
class RunPlan:
    """One record to compute: what runs, on which images, with which parameters, stored where.

    Attributes
    ----------
    config : DatasetConfig
        The dataset's config (``config.id`` is the dataset id).
    method : str
        The method id (or the name of external predictions, see :func:`plan_external`).
    method_cls : type of Segmenter or None
        The registered method class; None for predictions made outside apgbench.
    params : dict
        The method's full, validated parameters (defaults, dataset prompt, then the user's values).
    user_params : dict
        The parameters as the user gave them (validated), so a worker can plan the same record again.
    run_key : str
        ``default`` or ``p-<hash>`` of the non-default parameters (see :func:`apgbench.results.run_key`).
    directory : Path
        The record folder.
    image_ids : tuple of str
        The images this plan covers: the test split, cut by ``limit``, then by ``shard``.
    n_images : int
        Size of the whole test split (a record is complete when it holds this many images).
    limit, shard : optional
        The cut applied (``shard`` is ``[start, stop)`` after ``limit``).
    tag : str, optional
        The name of a non-default parameter set, shown by reports instead of the run key.
    data : object
        The opened dataset (iterable over samples, ``get(image_id)``, ``fingerprint()``).
    """

    config: DatasetConfig
    method: str
    method_cls: type[Segmenter] | None
    params: dict[str, Any]
    user_params: dict[str, Any]
    run_key: str
    directory: Path
    image_ids: tuple[str, ...]
    n_images: int
    limit: int | None = None
    shard: tuple[int, int] | None = None
    tag: str | None = None
    data: Any = field(default=None, repr=False, compare=False)

    @property
    def dataset(self) -> str:
        """The dataset id."""
        return self.config.id

    @property
    def segment_kwargs(self) -> dict[str, Any]:
        """Extra arguments of ``Segmenter.segment``: a 3D test set's volumes come with ``ndim`` and ``spacing``."""
        return {"ndim": 3, "spacing": self.config.voxel_size} if self.config.volumetric else {}

    @property
    def name(self) -> str:
        """``method/dataset/run_key`` plus the shard range, for logs and status tables."""
        span = f"[{self.shard[0]}:{self.shard[1]}]" if self.shard else ""
        return f"{self.method}/{self.dataset}/{self.run_key}{span}"

    def build(self) -> Segmenter:
        """A new segmenter with the plan's parameters (its model loads in ``prepare``)."""
        if self.method_cls is None:
            raise TypeError(f"'{self.method}' names external predictions; there is no method to build.")
        return self.method_cls(**self.params)

    def run_info(self, *, device: str, method_info: dict[str, Any] | None = None) -> RunInfo:
        """A fresh ``run.json`` manifest for this plan (provenance; the summary is filled in on finalize)."""
        info = RunInfo(
            dataset=self.dataset,
            domain=self.config.domain,
            method=self.method,
            run_key=self.run_key,
            params=self.params,
            method_info=method_info or {},
            dataset_fingerprint=self.fingerprint,
            apgbench_version=__version__,
            git_revision=git_revision(),
            device=device,
            started=utc_now(),
            n_images=self.n_images,
        )
        if self.tag:
            info.tag = self.tag  # run.json allows extra fields: the layout is unchanged
        return info

    @functools.cached_property
    def fingerprint(self) -> str:
        """The dataset's fingerprint (sha256 of its prepared data), computed once."""
        return self.data.fingerprint()

    def shards(self, size: int | None) -> list[RunPlan]:
        """The plan split into plans of ``size`` images each (itself when ``size`` is None or covers all)."""
        n = len(self.image_ids)
        if not size or size >= n:
            return [self]
        return [
            replace(self, shard=(s, min(s + size, n)), image_ids=self.image_ids[s : s + size])
            for s in range(0, n, size)
        ]


def resolve_params(
    method_cls: type[Segmenter], config: DatasetConfig, params: dict[str, Any]
) -> dict[str, Any]:
    """A method's full parameters: defaults, then the dataset's text prompt (concept models), then the user's.

    The user's values are type-checked and normalised first (:func:`~apgbench.methods.check_params`), so a
    bad value fails before any record exists and ``sigma=1`` selects the same record as the default ``1.0``.
    """
    resolved = dict(method_cls.default_params)
    if "prompt" in resolved and config.prompt:
        resolved["prompt"] = config.prompt
    resolved.update(method_cls.check_params(params))
    return resolved


def plan_run(
    dataset: str | DatasetConfig,
    method: str,
    params: dict[str, Any] | None = None,
    *,
    results_root: str | os.PathLike | None = None,
    data_root: str | os.PathLike | None = None,
    limit: int | None = None,
    shard: tuple[int, int] | None = None,
    tag: str | None = None,
    data: Any = None,
) -> RunPlan:
    """Plan one record: check the ids, the parameters and the tag, and find the record folder and images.

    Raises
    ------
    UnknownIdError
        If the dataset or the method is not registered (the message suggests close ids).
    ParameterError
        If a parameter is unknown or of the wrong type, or the tag is malformed or names other parameters.
    DatasetNotPreparedError
        If the dataset is not prepared.
    """
    config = dataset if isinstance(dataset, DatasetConfig) else get_dataset_config(dataset)
    data = data if data is not None else load_dataset(config, data_root)
    method_cls = get_method(method)
    user = method_cls.check_params(params or {})
    resolved = resolve_params(method_cls, config, user)
    if config.volumetric:  # a 3D test set: a 2D-only method needs stitch=..., said before any model loads
        method_cls.volume_mode(resolved)
    key = run_key(resolved, method_cls.default_params)
    root = _results_root(results_root)
    if tag is not None:
        check_tag(root, method_cls.name, key, tag)
    image_ids = tuple(data.image_ids)[: limit if limit is not None else None]
    if shard is not None:
        image_ids = image_ids[shard[0] : shard[1]]
    return RunPlan(
        config,
        method_cls.name,
        method_cls,
        resolved,
        user,
        key,
        record_dir(root, method_cls.name, config.id, key),
        image_ids,
        len(data),
        limit,
        shard,
        tag,
        data,
    )


def plan_external(
    dataset: str,
    name: str,
    folder: str | os.PathLike,
    *,
    results_root: str | os.PathLike | None = None,
    data_root: str | os.PathLike | None = None,
) -> RunPlan:
    """Plan the record of label images made outside apgbench (``apgbench evaluate``), stored as ``name``.

    Raises
    ------
    ParameterError
        If ``name`` is not a valid id or is a registered method's id.
    """
    from .methods import available_methods

    if not ID_PATTERN.match(name):
        raise ParameterError(f"Method name '{name}' must be kebab-case (lower-case letters, digits, '-').")
    if name in available_methods():
        raise ParameterError(
            f"'{name}' is the id of a registered method; store these predictions under another "
            f"--name (e.g. '{name}-external')."
        )
    config = get_dataset_config(dataset)
    data = load_dataset(config, data_root)
    params = {"predictions": str(Path(folder).resolve())}
    return RunPlan(
        config,
        name,
        None,
        params,
        params,
        "default",
        record_dir(_results_root(results_root), name, config.id, "default"),
        tuple(data.image_ids),
        len(data),
        data=data,
    )


def plan_runs(
    datasets: list[str],
    methods: list[str],
    params: dict[str, Any] | None = None,
    *,
    results_root: str | os.PathLike | None = None,
    data_root: str | os.PathLike | None = None,
    limit: int | None = None,
    tag: str | None = None,
) -> list[RunPlan]:
    """Plans for every (dataset, method) pair, methods as the outer loop (a model then loads once for all
    datasets it serves); each dataset is opened once. Everything is checked before anything runs.
    """
    opened = {}
    for dataset in datasets:
        config = get_dataset_config(dataset)
        opened[dataset] = (config, load_dataset(config, data_root))
    return [
        plan_run(
            config,
            method,
            params,
            results_root=results_root,
            data_root=data_root,
            limit=limit,
            tag=tag,
            data=data,
        )
        for method in methods
        for config, data in opened.values()
    ]


def expand_methods(
    selection: list[str], *, ready_only: bool = True
) -> tuple[list[str], list[tuple[str, str]]]:
    """Method ids for a ``--method`` selection, with ``all`` expanded; the one place that expands it.

    With ``ready_only`` (``run``, ``submit``) ``all`` keeps the methods that can run here and returns the
    others as ``(id, why)`` to show, while a method named explicitly that cannot run here is an error: a
    run or a job would only fail later with the same missing library or weights. Without it (``status``)
    ``all`` is every registered method.

    Raises
    ------
    MethodUnavailableError
        If a named method cannot run here, or nothing selected can.
    """
    from .methods import available_methods, method_status

    ids: list[str] = []
    skipped: list[tuple[str, str]] = []
    refused: list[str] = []
    for item in selection:
        if item == "all":
            for name, cls in available_methods().items():
                ready, why = method_status(cls) if ready_only else (True, "")
                (ids.append(name) if ready else skipped.append((name, why)))
            continue
        name = get_method(item).name
        ready, why = method_status(get_method(name)) if ready_only else (True, "")
        (ids.append(name) if ready else refused.append(f"{name} ({why})"))
    if refused:
        raise MethodUnavailableError(f"Cannot run here, nothing was started: {'; '.join(refused)}.")
    if not ids:
        raise MethodUnavailableError("No selected method can run here (see `apgbench methods list`).")
    return list(dict.fromkeys(ids)), skipped


def check_tag(results_root: Path, method: str, key: str, tag: str) -> None:
    """Refuse a tag that is malformed, names default parameters, or names another parameter set."""
    if not ID_PATTERN.match(tag):
        raise ParameterError(
            f"Tag '{tag}' must be lower-case letters, digits, dots and dashes (e.g. lowthresh)."
        )
    if key == "default":
        raise ParameterError(f"--tag {tag} names a run with non-default parameters; these are the defaults.")
    for path in Path(results_root, method).glob("*/*/run.json"):
        try:
            other = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # an unreadable record is the report's and `status`'s to flag
        if other.get("tag") == tag and other.get("run_key") != key:
            raise ParameterError(
                f"Tag '{tag}' already names other parameters of '{method}' "
                f"({path.parent}); choose another tag."
            )
