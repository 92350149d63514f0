"""Paper Fig. 1c: chosen images with the ground truth's and each method's object contours, side by side."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..results import iter_records, read_prediction, record_label
from .tables import domain_key, order_methods

MAX_DEFAULT_IMAGES = 4


def record_dirs(results_root: str | os.PathLike) -> dict[tuple[str, str], Path]:
    """(dataset, method label) -> record folder, for every record under the root."""
    found = {}
    for directory in iter_records(results_root):
        try:
            info = json.loads((directory / "run.json").read_text())
            found[(info["dataset"], record_label(info["method"], info["run_key"], info.get("tag")))] = (
                directory
            )
        except (OSError, ValueError, KeyError, TypeError):
            continue  # unreadable: load_scores names it with its repair
    return found


def parse_selection(items: list[str]) -> list[tuple[str, str | None]]:
    """``dataset:image_id`` or ``dataset`` (any image of it) -> (dataset, image_id or None)."""
    selection = []
    for item in items:
        dataset, _, image_id = item.partition(":")
        selection.append((dataset.strip(), image_id.strip() or None))
    return selection


def candidate_groups(valid: pd.DataFrame, selection: list[tuple[str, str | None]] | None):
    """Groups of (dataset, image_id or None) to try; the figure shows the first that works in each group.

    Given a selection, each item is its own group. Otherwise there is one group per domain holding its
    datasets in order, so a domain whose first dataset is not prepared here still gets an image.
    """
    if selection:
        return [[item] for item in selection]
    pairs = sorted(set(zip(valid["domain"], valid["dataset"])), key=lambda p: (domain_key(p[0]), p[1]))
    groups: dict[str, list] = {}
    for domain, dataset in pairs:
        groups.setdefault(domain, []).append((dataset, None))
    return list(groups.values())[:MAX_DEFAULT_IMAGES]


def pick_image(valid: pd.DataFrame, dataset: str) -> str | None:
    """The image of ``dataset`` scored by the most methods, among those the one where their mSA differs most."""
    rows = valid[valid["dataset"] == dataset]
    if rows.empty:
        return None
    per_image = rows.groupby("image_id")["msa"].agg(["size", "std"]).fillna(0.0)
    return str(per_image.sort_values(["size", "std"], ascending=False, kind="stable").index[0])


def display_image(image: np.ndarray) -> np.ndarray:
    """An RGB float image in [0, 1] for display: per-channel 1-99.5 percentile stretch, 2 channels as R/G."""
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 2:
        image = image[..., None]
    channels = []
    for c in range(image.shape[-1]):
        low, high = np.percentile(image[..., c], [1, 99.5])
        channels.append(np.clip((image[..., c] - low) / (high - low if high > low else 1.0), 0, 1))
    if len(channels) == 1:
        channels *= 3
    elif len(channels) == 2:
        channels.append(np.zeros_like(channels[0]))
    return np.stack(channels[:3], axis=-1)


def overlay_contours(rgb: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``rgb`` with each object's boundary drawn in its own colour (colours cycle through tab20)."""
    import matplotlib.colors
    import skimage as ski
    from scipy import ndimage as ndi

    out = rgb.copy()
    labels = np.asarray(labels)
    boundaries = ski.segmentation.find_boundaries(labels, mode="inner")
    # two pixels wide, inside the object, so lines survive the downscaling of the figure
    boundaries = ndi.binary_dilation(boundaries, np.ones((2, 2), bool)) & (labels > 0)
    # saturated hues spread by the golden ratio: neighbouring objects get clearly different colours
    ids = labels[boundaries].astype(np.int64)
    hues = (ids * 0.618033988749895) % 1.0
    hsv = np.stack([hues, np.full_like(hues, 0.9), np.ones_like(hues)], axis=-1)
    out[boundaries] = matplotlib.colors.hsv_to_rgb(hsv)
    return out


def qualitative_figure(
    results_root: str | os.PathLike,
    valid: pd.DataFrame,
    selection=None,
    *,
    data_root: str | os.PathLike | None = None,
) -> tuple[Figure | None, list[str]]:
    """Rows: chosen images; columns: image, ground truth, then one per method with its contours and mSA.

    Returns
    -------
    figure : Figure or None
        None when no chosen image could be shown.
    notes : list of str
        What could not be shown and why (dataset not prepared, no stored prediction, unknown image).
    """
    notes: list[str] = []
    records = record_dirs(results_root)
    rows = []
    unshown: list[tuple[str, str]] = []  # default mode: (domain, first reason) of domains without an image
    for group in candidate_groups(valid, selection):
        failures = []
        for dataset, image_id in group:
            image_id = image_id or pick_image(valid, dataset)
            row = _row(dataset, image_id, valid, records, data_root) if image_id else "no scored image"
            if isinstance(row, str):
                failures.append(f"{dataset}:{image_id} ({row})" if image_id else f"{dataset} ({row})")
                continue
            rows.append(row)
            break
        else:
            if selection:
                notes.append(f"Qualitative figure: skipped {'; '.join(failures)}.")
            elif failures:
                domain = valid.loc[valid["dataset"] == group[0][0], "domain"].iloc[0]
                unshown.append((domain, failures[0]))
    if unshown:
        notes.append(
            f"Qualitative figure: no image for {', '.join(d for d, _ in unshown)}; e.g. {unshown[0][1]}. "
            "Choose images with --images dataset:image_id."
        )
    if not rows:
        return None, notes
    ncols = 2 + max(len(panels) for *_, panels in rows)
    fig = Figure(figsize=(2.2 * ncols, 2.4 * len(rows)), layout="constrained")
    axes = fig.subplots(len(rows), ncols, squeeze=False)
    for (dataset, image_id, sample, panels), row_axes in zip(rows, axes):
        rgb = display_image(sample.image)
        row_axes[0].imshow(rgb)
        row_axes[0].set_title(f"{dataset}\n{image_id}", fontsize=7)
        n_true = len(np.unique(sample.labels)) - int((sample.labels == 0).any())
        row_axes[1].imshow(overlay_contours(rgb, sample.labels))
        row_axes[1].set_title(f"ground truth\n{n_true} objects", fontsize=7)
        for ax, (label, prediction, msa) in zip(row_axes[2:], panels):
            ax.imshow(overlay_contours(rgb, prediction))
            score = "–" if msa is None or np.isnan(msa) else f"{msa:.3f}"
            ax.set_title(f"{label}\nmSA {score}", fontsize=7)
        for ax in row_axes:
            ax.set_xticks([])
            ax.set_yticks([])
        for ax in row_axes[2 + len(panels) :]:
            ax.set_visible(False)
    return fig, notes


def _row(dataset: str, image_id: str, valid: pd.DataFrame, records, data_root):
    """(dataset, image_id, sample, panels) for one figure row, or a string saying why there is none."""
    from ..datasets import load_dataset

    try:
        sample = load_dataset(dataset, data_root).get(image_id)
    except (KeyError, FileNotFoundError, OSError, ValueError) as err:
        return err.args[0] if isinstance(err, KeyError) and err.args else str(err)
    scored = valid[(valid["dataset"] == dataset) & (valid["image_id"] == image_id)].set_index("label")["msa"]
    panels = []
    for label in order_methods([lab for (d, lab) in records if d == dataset]):
        try:
            prediction = read_prediction(records[(dataset, label)], image_id)
        except (KeyError, OSError):
            continue
        panels.append((label, prediction, scored.get(label)))
    return (dataset, image_id, sample, panels) if panels else "no stored prediction"
