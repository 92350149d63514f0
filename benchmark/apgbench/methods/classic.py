"""``classic``: a weight-free baseline, threshold + distance-transform watershed (scikit-image).

The pipeline is what a bioimage analyst would build by hand for each domain:

1. reduce the image to one channel where objects are bright (H&E: the haematoxylin channel; label-free:
   local texture, since phase-contrast cells are not brighter than the background; two channels: their
   normalised mean);
2. percentile-normalise and smooth;
3. foreground by Otsu's threshold (or a local threshold for uneven illumination), holes filled, specks removed;
4. split touching objects with a watershed on the smoothed distance transform, seeded at its h-maxima.

Volumes (``meta.supports_3d="native"``) run the same pipeline in 3D: the channel is reduced slice by slice and
normalised over the volume, and every step works on the volume with the voxel size (z, y, x) the dataset gives
(scaled so that y/x voxels are 1): smoothing sigmas and the local-threshold block shrink along a coarser z, the
distance transform is in these units (so ``h`` keeps its meaning), and ``min_size`` counts voxels.
"""

from __future__ import annotations

import numpy as np
import skimage as ski
from scipy import ndimage as ndi

from . import register_method
from .base import ParameterError, Segmenter
from .meta import MethodMeta


def to_foreground_channel(image: np.ndarray, domain: str | None) -> np.ndarray:
    """One float channel in which the objects of ``domain`` are brighter than the background."""
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 3 and image.shape[-1] == 3:
        if domain == "nuclei-histo":
            rgb = np.clip(image / (255.0 if image.max() > 1 else 1.0), 0, 1)
            return ski.color.rgb2hed(rgb)[..., 0]
        image = image @ np.array([0.2125, 0.7154, 0.0721])
    elif image.ndim == 3:
        image = np.mean([normalize(image[..., c]) for c in range(image.shape[-1])], axis=0)
    if domain == "cells-labelfree":
        # Phase contrast / brightfield: cells deviate from a flat background (dark interiors, bright halos)
        # in either direction, so the object channel is the smoothed absolute deviation from it.
        background = np.median(image)
        return ndi.gaussian_filter(np.abs(ndi.gaussian_filter(image, 1.0) - background), 3.0)
    return image


def normalize(image: np.ndarray, low: float = 1.0, high: float = 99.8) -> np.ndarray:
    """Percentile normalisation to about [0, 1]; a constant image becomes zeros."""
    lo, hi = np.percentile(image, [low, high])
    if hi <= lo:
        return np.zeros(image.shape, dtype=np.float64)
    return (image - lo) / (hi - lo)


@register_method
class ClassicWatershed(Segmenter):
    """Otsu/local threshold + distance-transform watershed; no weights, CPU only."""

    meta = MethodMeta(
        name="classic",
        description="Threshold + distance-transform watershed baseline (scikit-image, no weights)",
        table_order=110,
        supports_3d="native",
    )
    default_params = {
        "sigma": 1.0,
        "threshold": "otsu",
        "block_size": 101,
        "min_size": 15,
        "h": 1.5,
        "h_fraction": 0.0,
        "distance_sigma": 1.0,
    }

    def _segment(self, image: np.ndarray) -> np.ndarray:
        return self._watershed(normalize(to_foreground_channel(image, self.domain)), None)

    def _segment_volume(self, volume: np.ndarray, spacing: tuple[float, float, float] | None) -> np.ndarray:
        channel = np.stack([to_foreground_channel(plane, self.domain) for plane in volume])
        scale = None if spacing is None else np.asarray(spacing, dtype=np.float64) / float(spacing[-1])
        return self._watershed(normalize(channel), scale)

    def _watershed(self, channel: np.ndarray, scale: np.ndarray | None) -> np.ndarray:
        """Threshold + watershed of a normalised 2D or 3D channel; ``scale`` is the voxel size (y/x = 1)."""
        p = self.params
        # In pixel units along each axis: a coarser axis gets proportionally less smoothing.
        per_axis = (lambda value: value) if scale is None else (lambda value: value / scale)
        channel = ndi.gaussian_filter(channel, per_axis(p["sigma"]))
        if p["threshold"] == "otsu":
            foreground = channel > ski.filters.threshold_otsu(channel) if np.ptp(channel) > 0 else channel > 1
        elif p["threshold"] == "local":
            block = int(p["block_size"]) | 1
            if scale is not None:
                block = [max(3, int(np.rint(b)) | 1) for b in per_axis(float(block))]
            foreground = channel > ski.filters.threshold_local(channel, block)
            foreground &= channel > ski.filters.threshold_otsu(channel) * 0.5
        else:
            raise ParameterError(f"Unknown threshold '{p['threshold']}'; use 'otsu' or 'local'.")
        foreground = ndi.binary_fill_holes(ndi.binary_opening(foreground, iterations=1))
        components, _ = ndi.label(foreground)
        sizes = np.bincount(components.ravel())
        foreground &= sizes[components] >= p["min_size"]
        if not foreground.any():
            return np.zeros(channel.shape, dtype=np.uint32)
        distance = ndi.distance_transform_edt(foreground, sampling=scale)
        distance = ndi.gaussian_filter(distance, per_axis(p["distance_sigma"]))
        # Seeds must stand out by a height that grows with the object size: a fixed h over-splits big cells.
        components, n = ndi.label(foreground)
        thickness = ndi.maximum(distance, components, np.arange(1, n + 1))
        h = max(p["h"], p["h_fraction"] * float(np.median(thickness)))
        markers, _ = ndi.label(ski.morphology.h_maxima(distance, h) & foreground)
        labels = ski.segmentation.watershed(-distance, markers, mask=foreground)
        sizes = np.bincount(labels.ravel())
        labels[sizes[labels] < p["min_size"]] = 0
        return labels.astype(np.uint32)
