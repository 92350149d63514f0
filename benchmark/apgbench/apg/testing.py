"""Ground-truth stand-ins for the network: perfect decoder maps and a perfect promptable model.

They let APG and AIS be tested without any network, and they are upper-bound analyses for users: APG with
:func:`decoder_maps_from_labels` and :class:`OracleModel` shows what the algorithm loses by itself (objects
below the size filter, shapes whose thresholded maps leave no seed), independently of any model.

Examples
--------
>>> import numpy as np
>>> from apgbench.apg import automatic_prompt_generation
>>> from apgbench.apg.testing import OracleModel, decoder_maps_from_labels
>>> labels = np.zeros((64, 64), np.uint32)
>>> labels[5:25, 5:25] = 1
>>> labels[30:60, 20:50] = 2
>>> result = automatic_prompt_generation(*decoder_maps_from_labels(labels), OracleModel(labels))
>>> int(result.max())
2
"""

from __future__ import annotations

import numpy as np
import skimage as ski
from scipy import ndimage as ndi

from .masks import PromptMasks

_EPS = 1e-7


def decoder_maps_from_labels(
    labels: np.ndarray, *, min_size: int = 25
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The three maps the µSAM decoder is trained to predict, computed from a label image.

    Follows torch-em's ``PerObjectDistanceTransform(distances=True, boundary_distances=True,
    foreground=True)``, micro-sam's training target: objects are split into connected components
    (8-neighbourhood) and components smaller than ``min_size`` (micro-sam's training default 25) dropped.
    Per object, with ``b`` the distance to the object's inner boundary (computed in its bounding box) and
    ``c`` its center (the rounded centroid, or the maximum of ``b`` when the centroid lies outside):

    - center distance: Euclidean distance to ``c``, divided by its maximum over the object;
    - boundary distance: ``max(b) - b``, divided by its maximum over the object;

    both are 1 in the background, and the foreground is ``labels > 0`` after the filtering.

    Parameters
    ----------
    labels : ndarray of int, shape (H, W)
        Instance labels, 0 = background.
    min_size : int
        Components smaller than this become background.

    Returns
    -------
    foreground, center_distances, boundary_distances : ndarray of float32, shape (H, W)
        Each in [0, 1].
    """
    labels = ski.measure.label(np.asarray(labels), background=0, connectivity=2)
    if min_size > 0 and labels.max() > 0:
        sizes = np.bincount(labels.ravel())
        small = sizes < min_size
        small[0] = False
        labels[small[labels]] = 0
    boundaries = ski.segmentation.find_boundaries(labels, mode="inner")
    center = np.ones(labels.shape, np.float32)
    boundary = np.ones(labels.shape, np.float32)
    for prop in ski.measure.regionprops(labels):
        box = prop.slice
        mask = prop.image
        b = ndi.distance_transform_edt(~boundaries[box])
        b[~mask] = 0
        peak = np.unravel_index(np.argmax(b), b.shape)
        centre = tuple(int(v) for v in np.round(np.asarray(prop.centroid)) - [s.start for s in box])
        if not mask[centre]:
            centre = tuple(int(v) for v in peak)
        rows, cols = np.indices(mask.shape)
        dc = np.hypot(rows - centre[0], cols - centre[1])
        db = b[peak] - b
        dc[~mask], db[~mask] = 0, 0
        dc /= np.abs(dc).max() + _EPS
        db /= np.abs(db).max() + _EPS
        center[box][mask] = dc[mask]
        boundary[box][mask] = db[mask]
    return (labels > 0).astype(np.float32), center, boundary


class OracleModel:
    """A promptable model that answers each point with the true object under it.

    Parameters
    ----------
    labels : ndarray of int, shape (H, W)
        The ground truth.
    background_iou : float
        Predicted IoU for a point on the background (whose mask is empty).

    Notes
    -----
    The predicted IoU of an object is ``1 - 1 / (1 + sqrt(area))`` (larger objects rank first, a
    deterministic stand-in for a quality score); the stability score is 1.
    """

    def __init__(self, labels: np.ndarray, background_iou: float = 0.0) -> None:
        self.labels = np.asarray(labels)
        self.background_iou = background_iou
        self._objects = {p.label: (p.bbox, p.image, p.area) for p in ski.measure.regionprops(self.labels)}

    def predict_points(self, points: np.ndarray) -> PromptMasks:
        """One mask per ``(row, col)`` point: the object under it (empty on background)."""
        points = np.asarray(points, dtype=np.int64).reshape(-1, 2)
        boxes, crops, ious = [], [], []
        for row, col in points:
            value = int(self.labels[row, col])
            if value == 0:
                boxes.append((0, 0, 0, 0))
                crops.append(np.zeros((0, 0), bool))
                ious.append(self.background_iou)
                continue
            bbox, image, area = self._objects[value]
            boxes.append(bbox)
            crops.append(image.copy())
            ious.append(1.0 - 1.0 / (1.0 + np.sqrt(area)))
        return PromptMasks(
            self.labels.shape, np.array(boxes).reshape(-1, 4), crops, np.array(ious), np.ones(len(ious))
        )
