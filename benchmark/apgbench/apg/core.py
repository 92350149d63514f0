"""APG and AIS: the two ways from decoder maps to an instance segmentation."""

from __future__ import annotations

import time

import numpy as np
import skimage as ski
from scipy import ndimage as ndi

from .masks import PromptableModel, PromptMasks, mask_nms, paint_prompt_masks, ranking_scores
from .prompts import derive_prompts

APG_DEFAULTS = {
    "prompts": "components",
    "foreground_threshold": 0.5,
    "center_distance_threshold": 0.5,
    "boundary_distance_threshold": 0.5,
    "min_size": 25,
    "nms_threshold": 0.9,
    "nms_measure": "iou",
    "ranking": "iou-x-stability",
    "paint_order": "area",
    "split_components": True,
    "connectivity": 2,
    "batch_size": 32,
    "min_distance": 5,
    "threshold_abs": 0.25,
}

AIS_DEFAULTS = {
    "foreground_threshold": 0.5,
    "center_distance_threshold": 0.5,
    "boundary_distance_threshold": 0.5,
    "foreground_smoothing": 1.0,
    "distance_smoothing": 1.6,
    "min_size": 0,
}


def _check_maps(foreground, center_distances, boundary_distances):
    maps = [np.asarray(m, dtype=np.float32) for m in (foreground, center_distances, boundary_distances)]
    if maps[0].ndim != 2 or any(m.shape != maps[0].shape for m in maps):
        raise ValueError(f"The three decoder maps must be 2D of one shape, got {[m.shape for m in maps]}.")
    return maps


def _unknown(params: dict, defaults: dict, what: str) -> None:
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise TypeError(
            f"{what} got unknown parameter(s) {', '.join(unknown)}; known: {', '.join(defaults)}."
        )


def automatic_prompt_generation(
    foreground,
    center_distances,
    boundary_distances,
    model: PromptableModel,
    *,
    timings: dict | None = None,
    **params,
) -> np.ndarray:
    """Automatic prompt generation (APG, Archit & Pape Sec. 3.2) over any point-promptable model.

    Parameters
    ----------
    foreground, center_distances, boundary_distances : ndarray, shape (H, W)
        The decoder maps (see :func:`apgbench.apg.testing.decoder_maps_from_labels` for their meaning).
    model : PromptableModel
        Answers batches of point prompts with masks and predicted IoUs.
    timings : dict, optional
        If given, receives the seconds spent in ``prompts``, ``decode`` and ``nms_paint``.
    **params
        prompts : {"components", "boundary-maxima"}
            Prompt derivation (``components`` is the paper's APG, ``boundary-maxima`` its Fig. 3 variant).
        foreground_threshold, center_distance_threshold, boundary_distance_threshold : float
            t_fg, t_c, t_b (0.5).
        min_size : int
            s (25): masks of at most s pixels are dropped before NMS, painted pieces below s after.
        nms_threshold : float
            t_nms (0.9).
        nms_measure : {"iou", "iomin"}
            Overlap measure of the NMS.
        ranking : {"iou-x-stability", "iou"}
            NMS order: micro-sam's predicted IoU x stability score (default), or the paper's predicted IoU.
        paint_order : {"area", "score"}
            Who wins overlapping pixels: the larger mask (micro-sam, default) or the better-ranked one.
        split_components : bool
            Split painted masks into connected pieces before the final size filter (micro-sam, default);
            False paints each mask as one object, as the paper describes.
        connectivity : int
            Connectivity of the prompt components and of the final split into pieces: 2 (8-neighbourhood,
            the paper's code, default) or 1 (micro-sam >= 1.6.3).
        batch_size : int
            Prompts per model call (32).
        min_distance, threshold_abs : int, float
            ``boundary-maxima`` only: ``peak_local_max``'s minimal peak distance (5) and height (0.25).

    Returns
    -------
    labels : ndarray of uint32, shape (H, W)

    Examples
    --------
    >>> import numpy as np
    >>> from apgbench.apg.testing import OracleModel, decoder_maps_from_labels
    >>> truth = np.zeros((64, 64), np.uint32)
    >>> truth[4:24, 4:24] = 1
    >>> truth[30:60, 20:50] = 2
    >>> maps = decoder_maps_from_labels(truth)  # perfect decoder maps
    >>> labels = automatic_prompt_generation(*maps, OracleModel(truth))  # a perfect promptable model
    >>> labels.dtype, np.unique(labels).tolist()
    (dtype('uint32'), [0, 1, 2])
    >>> bool((labels[truth == 2] == labels[45, 35]).all())
    True
    """
    _unknown(params, APG_DEFAULTS, "automatic_prompt_generation")
    p = {**APG_DEFAULTS, **params}
    fg, dc, db = _check_maps(foreground, center_distances, boundary_distances)
    t0 = time.perf_counter()
    points = derive_prompts(
        fg,
        dc,
        db,
        mode=p["prompts"],
        foreground_threshold=p["foreground_threshold"],
        center_distance_threshold=p["center_distance_threshold"],
        boundary_distance_threshold=p["boundary_distance_threshold"],
        connectivity=p["connectivity"],
        min_distance=p["min_distance"],
        threshold_abs=p["threshold_abs"],
    )
    t1 = time.perf_counter()
    batch = max(int(p["batch_size"]), 1)
    masks = PromptMasks.concatenate(
        [model.predict_points(points[i : i + batch]) for i in range(0, len(points), batch)], fg.shape
    )
    t2 = time.perf_counter()
    labels = prompt_masks_to_labels(
        masks,
        min_size=p["min_size"],
        nms_threshold=p["nms_threshold"],
        nms_measure=p["nms_measure"],
        ranking=p["ranking"],
        paint_order=p["paint_order"],
        split_components=p["split_components"],
        connectivity=p["connectivity"],
    )
    t3 = time.perf_counter()
    if timings is not None:
        timings.update(prompts=t1 - t0, decode=t2 - t1, nms_paint=t3 - t2, n_prompts=len(points))
    return labels


def prompt_masks_to_labels(
    masks: PromptMasks,
    *,
    min_size: int = 25,
    nms_threshold: float = 0.9,
    nms_measure: str = "iou",
    ranking: str = "iou-x-stability",
    paint_order: str = "area",
    split_components: bool = True,
    connectivity: int = 2,
) -> np.ndarray:
    """Size filter, greedy mask NMS and painting (APG steps 6-7); see :func:`automatic_prompt_generation`."""
    keep = np.flatnonzero(masks.areas > min_size)  # micro-sam keeps area > min_size
    masks = masks.select(keep)
    if len(masks) == 0:
        return np.zeros(masks.shape, dtype=np.uint32)
    kept = mask_nms(masks, ranking_scores(masks, ranking), nms_threshold, nms_measure)
    return paint_prompt_masks(
        masks,
        kept,
        min_size=min_size,
        paint_order=paint_order,
        split_components=split_components,
        connectivity=connectivity,
    )


def vigra_gaussian(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing as vigra's ``gaussianSmoothing``, which the paper's AIS used.

    vigra's kernel has radius ``int(3 * sigma + 0.5)`` and mirrors borders without repeating the edge pixel:
    scipy's ``mode="mirror"`` with ``truncate=3.0`` (same radius) gives the same values.
    """
    return ndi.gaussian_filter(image, sigma, mode="mirror", truncate=3.0)


def automatic_instance_segmentation(foreground, center_distances, boundary_distances, **params) -> np.ndarray:
    """Automatic instance segmentation (µSAM's AIS): a seeded watershed on the decoder maps.

    The foreground is smoothed (sigma 1.0) and the distances too (sigma 1.6), as vigra does
    (:func:`vigra_gaussian`); seeds are the connected
    components (8-neighbourhood) of ``dc < t_c & db < t_b & fg > t_fg``; the watershed floods the smoothed
    boundary distance inside ``fg > t_fg``.

    Parameters
    ----------
    foreground, center_distances, boundary_distances : ndarray, shape (H, W)
        The decoder maps.
    **params
        foreground_threshold, center_distance_threshold, boundary_distance_threshold : float (0.5 each)
        foreground_smoothing : float (1.0), distance_smoothing : float (1.6)
        min_size : int
            Objects smaller than this are removed (0, micro-sam's default for AIS).

    Returns
    -------
    labels : ndarray of uint32, shape (H, W)

    Examples
    --------
    >>> import numpy as np
    >>> from apgbench.apg.testing import OracleModel, decoder_maps_from_labels
    >>> truth = np.zeros((64, 64), np.uint32)
    >>> truth[4:24, 4:24] = 1
    >>> truth[30:60, 20:50] = 2
    >>> maps = decoder_maps_from_labels(truth)  # perfect decoder maps
    >>> labels = automatic_instance_segmentation(*maps)
    >>> int(labels.max()), bool(labels[14, 14] != labels[45, 35])
    (2, True)
    """
    _unknown(params, AIS_DEFAULTS, "automatic_instance_segmentation")
    p = {**AIS_DEFAULTS, **params}
    fg, dc, db = _check_maps(foreground, center_distances, boundary_distances)
    if p["foreground_smoothing"] > 0:
        fg = vigra_gaussian(fg, p["foreground_smoothing"])
    if p["distance_smoothing"] > 0:
        dc = vigra_gaussian(dc, p["distance_smoothing"])
        db = vigra_gaussian(db, p["distance_smoothing"])
    fg_mask = fg > p["foreground_threshold"]
    seeds = fg_mask & (dc < p["center_distance_threshold"]) & (db < p["boundary_distance_threshold"])
    markers = ski.measure.label(seeds, connectivity=2)
    labels = ski.segmentation.watershed(db, markers=markers, mask=fg_mask).astype(np.uint32)
    if p["min_size"] > 0 and labels.max() > 0:
        sizes = np.bincount(labels.ravel())
        small = sizes < p["min_size"]
        small[0] = False
        labels[small[labels]] = 0
    return ski.segmentation.relabel_sequential(labels)[0].astype(np.uint32)
