"""Parameter sweeps of AIS / APG: a grid of parameter values scored on a dataset at the cost of the work it needs.

Per image, the model stage (image encoder + decoder maps, :meth:`~apgbench.methods.musam._MicroSam.
shared_stage`) runs once for the whole grid. For ``apg`` / ``apg-bd`` the prompts are derived once per distinct
set of prompt parameters and each distinct prompt set is decoded once (in the same batches as a run, so the
masks are the same to the bit); only the size filter, NMS and painting run per combination. For ``ais`` the
watershed runs per combination. micro-sam's own tools re-prompt the model for every combination.

Each combination's labels equal those of ``apgbench run`` with the same ``--param`` values (tested).
"""

from __future__ import annotations

import itertools
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .apg import (
    AIS_DEFAULTS,
    APG_DEFAULTS,
    PromptMasks,
    automatic_instance_segmentation,
    derive_prompts,
    prompt_masks_to_labels,
)
from .datasets import get_dataset_config, load_dataset
from .errors import InvalidInputError
from .malloc import tune_malloc
from .methods import get_method
from .metrics import score_image

SWEEPABLE = {"ais": AIS_DEFAULTS, "apg": APG_DEFAULTS, "apg-bd": APG_DEFAULTS}
PROMPT_KEYS = (
    "prompts",
    "foreground_threshold",
    "center_distance_threshold",
    "boundary_distance_threshold",
    "connectivity",
    "min_distance",
    "threshold_abs",
)
NMS_KEYS = (
    "min_size",
    "nms_threshold",
    "nms_measure",
    "ranking",
    "paint_order",
    "split_components",
    "connectivity",
)


class TunedOnTestWarning(UserWarning):
    """A sweep chose parameters on a benchmark dataset's test split: its best score is optimistic."""


def parse_grid(items: list[str] | None) -> dict[str, list[Any]]:
    """``["nms_threshold=0.8,0.9", ...]`` -> ``{"nms_threshold": [0.8, 0.9]}`` (values read as YAML scalars)."""
    import yaml

    grid: dict[str, list[Any]] = {}
    for item in items or []:
        key, sep, values = item.partition("=")
        if not sep or not key.strip() or not values.strip():
            raise InvalidInputError(f"--grid expects key=v1,v2,..., got '{item}'.")
        if key.strip() in grid:
            raise InvalidInputError(
                f"--grid {key.strip()} is given twice; list all its values in one --grid."
            )
        grid[key.strip()] = [yaml.safe_load(v) for v in values.split(",")]
    if not grid:
        raise InvalidInputError("A sweep needs at least one --grid key=v1,v2,...")
    return grid


def combinations(method: str, grid: dict[str, list[Any]], params: dict[str, Any] | None = None) -> list[dict]:
    """Every combination of ``grid`` over ``params``, each checked against the method's parameters."""
    if method not in SWEEPABLE:
        raise InvalidInputError(f"Method '{method}' cannot be swept; sweepable: {', '.join(SWEEPABLE)}.")
    cls = get_method(method)
    fixed = cls.check_params(params or {})
    unknown = sorted(set(grid) - set(SWEEPABLE[method]))
    if unknown:
        raise InvalidInputError(
            f"--grid {', '.join(unknown)}: not an algorithm parameter of '{method}'; "
            f"sweepable: {', '.join(k for k in SWEEPABLE[method] if k != 'prompts')}."
        )
    keys = list(grid)
    return [
        {**fixed, **cls.check_params(dict(zip(keys, values)))}
        for values in itertools.product(*(grid[k] for k in keys))
    ]


def sweep_image(
    segmenter, image: np.ndarray, combos: list[dict], timings: dict | None = None
) -> list[np.ndarray]:
    """Labels of ``image`` for each combination (parameters over the segmenter's own), sharing all it can."""
    import time

    t0 = time.perf_counter()
    shared = segmenter.shared_stage(image)
    maps = [np.asarray(m, dtype=np.float32) for m in shared.maps]  # as the APG entry point converts them
    t1 = time.perf_counter()
    full = [{**segmenter.params, **c} for c in combos]
    if segmenter.name == "ais":
        out = [automatic_instance_segmentation(*maps, **{k: p[k] for k in AIS_DEFAULTS}) for p in full]
        if timings is not None:
            timings.update(
                shared=timings.get("shared", 0) + t1 - t0,
                own=timings.get("own", 0) + time.perf_counter() - t1,
            )
        return out
    model = segmenter.point_model(shared.embeddings, image.shape[:2], shared.tiling)
    prompt_mode = segmenter.prompts
    decoded: dict[tuple, PromptMasks] = {}
    out = []
    for p in full:
        key = (*(p[k] for k in PROMPT_KEYS[1:]), p["batch_size"])
        if key not in decoded:
            points = derive_prompts(*maps, mode=prompt_mode, **{k: p[k] for k in PROMPT_KEYS[1:]})
            batch = max(int(p["batch_size"]), 1)
            decoded[key] = PromptMasks.concatenate(
                [model.predict_points(points[i : i + batch]) for i in range(0, len(points), batch)],
                shared.shape,
            )
        out.append(prompt_masks_to_labels(decoded[key], **{k: p[k] for k in NMS_KEYS}))
    if timings is not None:
        timings.update(
            shared=timings.get("shared", 0) + t1 - t0,
            own=timings.get("own", 0) + time.perf_counter() - t1,
            prompt_sets=timings.get("prompt_sets", 0) + len(decoded),
        )
    return out


def sweep(
    dataset: str,
    method: str,
    grid: dict[str, list[Any]],
    *,
    params: dict[str, Any] | None = None,
    data_root=None,
    limit: int | None = None,
    device: str = "cpu",
    segmenter=None,
    progress=None,
) -> tuple[pd.DataFrame, dict]:
    """Score every grid combination of ``method`` on ``dataset`` (its test split, or a folder's images).

    Returns
    -------
    table : DataFrame
        One row per combination: the grid's parameters, ``msa`` (mean over images, a failed image counts 0),
        ``sa50``, ``sa75``, ``n_images``.
    timings : dict
        Seconds in the shared stage and in the per-combination work, and the number of decoded prompt sets.
    """
    config = get_dataset_config(dataset)
    data = load_dataset(config, data_root)
    combos = combinations(method, grid, params)
    tune_malloc()  # speed only (apgbench.malloc)
    if getattr(config, "folder", None) is None:
        warnings.warn(
            f"Sweeping on {dataset}'s test split: the best combination's score is optimistic (tuned "
            "on the data it is scored on). Tune on a validation folder of your own, then run the test "
            "split with the chosen --param values.",
            TunedOnTestWarning,
            stacklevel=2,
        )
    own = segmenter is None
    if own:
        segmenter = get_method(method)(**get_method(method).check_params(params or {}))
    timings: dict[str, float] = {}
    scores: list[list[dict]] = [[] for _ in combos]
    ids = list(data.image_ids)[: limit if limit is not None else None]
    try:
        segmenter.prepare(device=device, domain=config.domain)
        for n, image_id in enumerate(ids):
            sample = data.get(image_id)
            for i, labels in enumerate(sweep_image(segmenter, sample.image, combos, timings)):
                scores[i].append(score_image(sample.labels, labels))
            if progress:
                progress(n + 1, len(ids))
    finally:
        if own:
            segmenter.close()
    rows = []
    for combo, per_image in zip(combos, scores):
        frame = pd.DataFrame(per_image)
        rows.append(
            {
                **{k: combo[k] for k in grid},
                "msa": frame["msa"].mean(),
                "sa50": frame["sa50"].mean(),
                "sa75": frame["sa75"].mean(),
                "n_images": len(frame),
            }
        )
    return pd.DataFrame(rows), timings


def best_flags(table: pd.DataFrame, grid: dict[str, list[Any]]) -> str:
    """The best combination (highest mSA, first on ties) as ``--param k=v`` flags."""
    best = table.loc[table["msa"].idxmax()]
    return " ".join(f"--param {k}={_plain(best[k])}" for k in grid)


def _plain(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{float(value):g}"
    if isinstance(value, (np.integer, np.bool_)):
        return str(value.item()).lower() if isinstance(value, np.bool_) else str(int(value))
    return str(value).lower() if isinstance(value, bool) else str(value)


def write_outputs(table: pd.DataFrame, grid: dict[str, list[Any]], out: Path, title: str) -> list[Path]:
    """``sweep.csv``, ``sweep.md`` and ``sweep.png`` (a heat-map of mSA per combination) in ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "sweep.csv", out / "sweep.md", out / "sweep.png"]
    table.to_csv(paths[0], index=False)
    cols = list(table.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in table.iterrows():
        lines.append(
            "| "
            + " | ".join(f"{row[c]:.4f}" if c in ("msa", "sa50", "sa75") else _plain(row[c]) for c in cols)
            + " |"
        )
    paths[1].write_text(f"# {title}\n\n" + "\n".join(lines) + "\n")
    keys = list(grid)
    rows_key, col_keys = keys[0], keys[1:]
    col_labels = [
        ", ".join(f"{k}={_plain(v)}" for k, v in zip(col_keys, values))
        for values in itertools.product(*(grid[k] for k in col_keys))
    ] or ["mSA"]
    matrix = table["msa"].to_numpy().reshape(len(grid[rows_key]), len(col_labels))
    fig, ax = plt.subplots(figsize=(3 + 1.1 * len(col_labels), 3 + 0.6 * len(grid[rows_key])))
    image = ax.imshow(matrix, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(col_labels)), col_labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(grid[rows_key])), [f"{rows_key}={_plain(v)}" for v in grid[rows_key]], fontsize=8)
    for (r, c), value in np.ndenumerate(matrix):
        ax.text(
            c,
            r,
            "n/a" if math.isnan(value) else f"{value:.3f}",
            ha="center",
            va="center",
            fontsize=7,
            color="white" if value < np.nanmean(matrix) else "black",
        )
    fig.colorbar(image, ax=ax, label="mSA")
    ax.set_title(title, fontsize=9)
    fig.savefig(paths[2], dpi=120, bbox_inches="tight")
    plt.close(fig)
    return paths
