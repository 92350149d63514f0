"""``classic``: a weight-free baseline, threshold + distance-transform watershed (scikit-image).

The pipeline is what a bioimage analyst would build by hand for each domain:

1. reduce the image to one channel where objects are bright (H&E: the haematoxylin channel; label-free:
   local texture, since phase-contrast cells are not brighter than the background; two channels: their
   normalised mean);
2. percentile-normalise and smooth;
3. foreground by Otsu's threshold (or a local threshold for uneven illumination), holes filled, specks removed;
4. split touching objects with a watershed on the smoothed distance transform, seeded at its h-maxima.
"""

from __future__ import annotations

import numpy as np
import skimage as ski
from scipy import ndimage as ndi

from . import register_method
from .base import Segmenter
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
        p = self.params
        channel = normalize(to_foreground_channel(image, self.domain))
        channel = ndi.gaussian_filter(channel, p["sigma"])
        if p["threshold"] == "otsu":
            foreground = channel > ski.filters.threshold_otsu(channel) if np.ptp(channel) > 0 else channel > 1
        elif p["threshold"] == "local":
            foreground = channel > ski.filters.threshold_local(channel, int(p["block_size"]) | 1)
            foreground &= channel > ski.filters.threshold_otsu(channel) * 0.5
        else:
            raise ValueError(f"Unknown threshold '{p['threshold']}'; use 'otsu' or 'local'.")
        foreground = ndi.binary_fill_holes(ndi.binary_opening(foreground, iterations=1))
        components, _ = ndi.label(foreground)
        sizes = np.bincount(components.ravel())
        foreground &= sizes[components] >= p["min_size"]
        if not foreground.any():
            return np.zeros(channel.shape, dtype=np.uint32)
        distance = ndi.gaussian_filter(ndi.distance_transform_edt(foreground), p["distance_sigma"])
        # Seeds must stand out by a height that grows with the object size: a fixed h over-splits big cells.
        components, n = ndi.label(foreground)
        thickness = ndi.maximum(distance, components, np.arange(1, n + 1))
        h = max(p["h"], p["h_fraction"] * float(np.median(thickness)))
        markers, _ = ndi.label(ski.morphology.h_maxima(distance, h) & foreground)
        labels = ski.segmentation.watershed(-distance, markers, mask=foreground)
        sizes = np.bincount(labels.ravel())
        labels[sizes[labels] < p["min_size"]] = 0
        return labels.astype(np.uint32)
