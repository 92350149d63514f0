"""Point prompts from the decoder maps (foreground, center distance, boundary distance).

Both distance maps follow the µSAM training targets (:func:`apgbench.apg.testing.decoder_maps_from_labels`):
values in [0, 1], 0 at an object's center, 1 at its boundary and in the background.
"""

from __future__ import annotations

import numpy as np
import skimage as ski
from scipy import ndimage as ndi

PROMPT_MODES = ("components", "boundary-maxima")


def seed_mask(
    foreground,
    center_distances,
    boundary_distances,
    *,
    foreground_threshold: float = 0.5,
    center_distance_threshold: float = 0.5,
    boundary_distance_threshold: float = 0.5,
) -> np.ndarray:
    """Pixels that are foreground (>= threshold, as micro-sam's APG) and near a center by both distances."""
    return (
        (np.asarray(foreground) >= foreground_threshold)
        & (np.asarray(center_distances) < center_distance_threshold)
        & (np.asarray(boundary_distances) < boundary_distance_threshold)
    )


def component_centers(components: np.ndarray) -> np.ndarray:
    """One point per labelled component: the maximum of its distance to the outside.

    The distance is taken to the nearest pixel outside all components or on the image border (micro-sam's
    ``_get_centers``: outer boundaries, border excluded); ties go to the first pixel in raster order.

    Returns
    -------
    points : ndarray of int, shape (N, 2)
        ``(row, col)`` per component, in increasing label order.
    """
    inside = components > 0
    inside[0, :] = inside[-1, :] = inside[:, 0] = inside[:, -1] = False
    distances = ndi.distance_transform_edt(inside)
    flat = np.flatnonzero(components)
    if flat.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    ids = components.ravel()[flat]
    order = np.lexsort((flat, -distances.ravel()[flat], ids))
    first = np.ones(order.size, dtype=bool)
    first[1:] = ids[order[1:]] != ids[order[:-1]]
    best = flat[order[first]]
    best_dist = distances.ravel()[best]
    points = np.stack(np.unravel_index(best, components.shape), axis=1).astype(np.int64)
    # A component lying on the image border only has distance 0 everywhere: micro-sam's argmax then
    # returns its bounding box corner; do the same.
    for k in np.flatnonzero(best_dist == 0):
        rows, cols = np.nonzero(components == ids[order[first]][k])
        points[k] = (rows.min(), cols.min())
    return points


def derive_prompts(
    foreground,
    center_distances,
    boundary_distances,
    *,
    mode: str = "components",
    foreground_threshold: float = 0.5,
    center_distance_threshold: float = 0.5,
    boundary_distance_threshold: float = 0.5,
    connectivity: int = 2,
    min_distance: int = 5,
    threshold_abs: float = 0.25,
) -> np.ndarray:
    """Derive positive point prompts from the decoder maps.

    Parameters
    ----------
    foreground, center_distances, boundary_distances : ndarray, shape (H, W)
        The decoder maps.
    mode : {"components", "boundary-maxima"}
        ``components`` (the paper's APG, steps 2-4): threshold the three maps, take the connected
        components of the intersection, one point per component at the maximum of its distance transform.
        ``boundary-maxima`` (the paper's Fig. 3 variant, micro-sam's ``prompt_selection="boundary_distances"``):
        local maxima of ``1 - boundary_distances`` over the whole image, with the background
        (foreground < t_fg) set to 0 (``skimage.feature.peak_local_max``, borders included).
    foreground_threshold, center_distance_threshold, boundary_distance_threshold : float
        The paper's t_fg, t_c, t_b (0.5 each).
    connectivity : int
        Connectivity of the components: 2 (8-neighbourhood, the paper's code: skimage's default) or 1
        (4-neighbourhood, micro-sam >= 1.6.3).
    min_distance : int
        ``boundary-maxima`` only: minimal distance between two maxima (pixels, 5).
    threshold_abs : float
        ``boundary-maxima`` only: minimal peak height of ``1 - boundary_distances`` (0.25).

    Returns
    -------
    points : ndarray of int, shape (N, 2)
        ``(row, col)`` image coordinates.

    Examples
    --------
    >>> import numpy as np
    >>> from apgbench.apg.testing import decoder_maps_from_labels
    >>> truth = np.zeros((64, 64), np.uint32)
    >>> truth[4:24, 4:24] = 1
    >>> truth[30:60, 20:50] = 2
    >>> derive_prompts(*decoder_maps_from_labels(truth)).tolist()  # one point per object, near its centre
    [[13, 13], [44, 34]]
    """
    foreground = np.asarray(foreground, dtype=np.float32)
    boundary_distances = np.asarray(boundary_distances, dtype=np.float32)
    if mode == "components":
        seeds = seed_mask(
            foreground,
            center_distances,
            boundary_distances,
            foreground_threshold=foreground_threshold,
            center_distance_threshold=center_distance_threshold,
            boundary_distance_threshold=boundary_distance_threshold,
        )
        components = ski.measure.label(seeds, connectivity=connectivity)
        return component_centers(components)
    if mode == "boundary-maxima":
        # micro-sam's prompt_selection="boundary_distances" (4f6d45e2, instance_segmentation.py:1356-1360):
        # peaks of 1 - bd over the whole image, background (fg < t_fg) set to 0; t_c and t_b play no part.
        closeness = 1.0 - boundary_distances
        closeness[foreground < foreground_threshold] = 0
        points = ski.feature.peak_local_max(
            closeness, min_distance=int(min_distance), threshold_abs=threshold_abs, exclude_border=False
        )
        return points.astype(np.int64).reshape(-1, 2)  # peak_local_max's order: highest peak first
    raise ValueError(f"Unknown prompt mode '{mode}'; expected one of {', '.join(PROMPT_MODES)}.")
