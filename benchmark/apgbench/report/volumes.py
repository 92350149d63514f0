"""The 3D part of the report: records of volumetric test sets (``<id>-3d``), kept out of the 2D tables.

For each (3D dataset, method) the table gives the method's volume mode and two scores of the same volumes:

- ``mSA 3D``: the mean over volumes of the 3D mSA (the record's scores; failed volumes count 0, as in 2D);
- ``mSA 2D (slices)``: the paper's protocol on the same predictions: every z slice of the record's predicted
  volume (``predictions.h5``) is scored as a 2D image against the same slice of the ground-truth volume, and
  the mean is taken over slices with objects (the paper drops images with empty ground truth); the slices of a
  volume that failed or was not run count 0 (unless ``exclude_failed``). Slices are
  scored in 2D, so an object split across slices costs nothing here and everything in 3D. Where the ground
  truth is not at hand (a real set not prepared under the data root), the cell stays empty and a note says so.

Mode: ``3D`` (the library's own 3D model, e.g. cellpose ``do_3D``, classic's 3D watershed), ``stitch
(library)`` (the library's own slice-and-merge, e.g. µSAM's 3D AIS, cellpose ``stitch_threshold``; apgbench's
APG-3D uses µSAM's merge rule), ``2D+stitch`` (a 2D-only method run slice by slice and joined by apgbench's
generic step, ``--param stitch=overlap``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..datasets import get_dataset_config, load_dataset
from ..metrics import mean_segmentation_accuracy
from ..results import iter_records, read_prediction, record_label
from .tables import counted_scores, msa_table

MODE_NAMES = {"3d": "3D", "stitch": "stitch (library)", "2d+stitch": "2D+stitch"}


def is_volumetric(dataset: str) -> bool:
    """Whether ``dataset`` is a 3D test set (its config says ``volumetric``); unknown ids count as 2D."""
    try:
        return bool(get_dataset_config(dataset).volumetric)
    except (KeyError, ValueError):
        return False


def split_volumetric(scores: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(2D rows, 3D rows): records of volumetric datasets go to the 3D part only."""
    if scores.empty:
        return scores, scores.iloc[0:0]
    flags = {d: is_volumetric(d) for d in scores["dataset"].unique()}
    mask = scores["dataset"].map(flags).astype(bool)
    return scores[~mask], scores[mask]


def _records(results_root) -> dict[tuple[str, str], tuple[Path, dict]]:
    found = {}
    for directory in iter_records(results_root):
        try:
            info = json.loads((directory / "run.json").read_text())
            label = record_label(info["method"], info["run_key"], info.get("tag"))
            found[(info["dataset"], label)] = (directory, info)
        except (OSError, ValueError, KeyError, TypeError):
            continue  # unreadable: load_scores reports it with its repair
    return found


def volume_mode_name(method: str, params: dict) -> str:
    """The report's name of how ``method`` with ``params`` segmented volumes."""
    from ..methods import get_method

    try:
        return MODE_NAMES[get_method(method).volume_mode(params)]
    except (KeyError, ValueError):
        return "?"


def slicewise_msa(labels: np.ndarray, prediction: np.ndarray) -> list[float]:
    """The paper's protocol on one volume: each z slice with objects scored as a 2D image."""
    return [mean_segmentation_accuracy(t, p) for t, p in zip(labels, prediction) if t.any()]


def volume_table(
    volume_scores: pd.DataFrame,
    results_root: str | os.PathLike,
    data_root: str | os.PathLike | None = None,
    *,
    exclude_failed: bool = False,
) -> tuple[pd.DataFrame, list[str]]:
    """One row per (dataset, method label) of the 3D sets.

    Columns: mode, mSA 3D, mSA 2D (slices), volumes, slices, failed, seconds per volume and the largest
    per-volume peak memory.

    Returns the table and notes (slice-wise scores that could not be computed, and why).
    """
    columns = [
        "dataset",
        "method",
        "mode",
        "mSA 3D",
        "mSA 2D (slices)",
        "volumes",
        "slices",
        "failed",
        "s/volume",
        "peak MiB",
    ]
    if volume_scores.empty:
        return pd.DataFrame(columns=columns), []
    valid = counted_scores(volume_scores, exclude_failed=exclude_failed)
    records, notes, rows = _records(results_root), [], []
    datasets: dict[str, object] = {}
    for (dataset, label), group in valid.groupby(["dataset", "label"], sort=True):
        directory, info = records.get((dataset, label), (None, {}))
        scored = set(group.loc[~group["zeroed"].astype(bool), "image_id"])
        slice_scores, problem = [], None
        try:
            if dataset not in datasets:
                datasets[dataset] = load_dataset(dataset, data_root)
            data = datasets[dataset]
            for image_id in data.image_ids:  # the whole test split: a volume not scored counts 0 per slice
                truth = data.get(image_id).labels
                if image_id in scored:
                    slice_scores += slicewise_msa(truth, read_prediction(directory, image_id))
                elif not exclude_failed:
                    slice_scores += [0.0] * int(sum(plane.any() for plane in truth))
        except Exception as err:  # data not prepared, record without predictions, ...
            problem = f"{type(err).__name__}: {err}".splitlines()[0][:200]
        if problem is not None:
            notes.append(f"3D table: no slice-wise mSA for {label} on {dataset} ({problem}).")
        failed = int(group["zeroed"].astype(bool).sum())
        rows.append(
            {
                "dataset": dataset,
                "method": label,
                "mode": volume_mode_name(info.get("method", label), info.get("params") or {}),
                "mSA 3D": group["msa"].mean(),
                "mSA 2D (slices)": np.mean(slice_scores) if slice_scores and problem is None else np.nan,
                "volumes": len(group),
                "slices": len(slice_scores) if problem is None else 0,
                "failed": failed,
                # per volume: segment() wall clock, and the largest per-volume peak resident memory (runner)
                "s/volume": pd.to_numeric(
                    group.loc[~group["zeroed"].astype(bool), "seconds"], errors="coerce"
                ).mean(),
                "peak MiB": pd.to_numeric(group["peak_mem_mb"], errors="coerce").max(),
            }
        )
    return pd.DataFrame(rows, columns=columns), notes


def volume_msa_table(volume_scores: pd.DataFrame, *, exclude_failed: bool = False) -> pd.DataFrame:
    """The 3D mSA as a (domain, dataset) x method table, the shape the rank functions take."""
    return msa_table(volume_scores, exclude_failed=exclude_failed)


def volume_section(
    output, volume_scores: pd.DataFrame, results_root, data_root=None, *, exclude_failed: bool = False
):
    """The report page's 3D section (table + rank plot), written through the report's ``_Output``."""
    from . import plots
    from .formats import frame_to_html
    from .html import Section
    from .stats import average_ranks, domain_means

    section = Section(
        "volumes",
        "3D — volumetric test sets, 3D vs. slice-wise",
        "Records of the <code>&lt;id&gt;-3d</code> sets (not in the 2D tables above). mSA 3D: mean "
        "over volumes of the mSA on label volumes. mSA 2D (slices): the paper's slice-wise protocol "
        "on the same predictions (each z slice with objects scored as a 2D image). Mode: 3D = the "
        "library's 3D model; stitch (library) = the library's own per-slice segmentation and merge "
        "(APG-3D: ours, with µSAM's merge rule); 2D+stitch = a 2D-only method run slice by slice and "
        "joined by apgbench's overlap rule.",
    )
    table, notes = volume_table(volume_scores, results_root, data_root, exclude_failed=exclude_failed)
    if table.empty:
        section.tables.append('<p class="nodata">No data: no records of volumetric test sets.</p>')
        return section, notes
    section.tables.append(
        output.table(
            table.set_index(["dataset", "method"]), "volumes_msa", "mSA on volumes: 3D and slice-wise"
        )
    )
    msa3d = volume_msa_table(volume_scores, exclude_failed=exclude_failed)
    avg, means = average_ranks(msa3d), domain_means(msa3d)
    if not avg.empty and avg["overall"].notna().any():
        output.table(avg, "volumes_ranks", "Average rank on the 3D sets (3D mSA)")
        output.figure(
            section,
            "3D sets: mean 3D mSA per domain, methods ordered by average rank.",
            lambda: plots.fig1b_ranks(means, avg),
            "volumes_ranks",
        )
        section.details.append(("Average rank on the 3D sets", frame_to_html(avg)))
    return section, notes
