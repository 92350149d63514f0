"""Built-in volumetric data: seeded touching ellipsoids in an anisotropic (Z, Y, X) volume.

The generator works in physical units: ``spacing`` is the (z, y, x) voxel size, so with ``(2, 1, 1)`` a round
nucleus spans half as many slices as pixels in y or x, as in a typical confocal stack. Ellipsoids are placed
closer than the sum of their radii, so neighbours touch (the earlier object keeps the shared voxels), and
rendered like the 2D fluorescence data: per-object brightness, brighter interiors, blur, Poisson and Gaussian
noise, uint16.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def ellipsoid_labels(
    rng: np.random.Generator,
    shape: tuple[int, int, int],
    n: int,
    radius: tuple[float, float],
    spacing: tuple[float, float, float],
    min_gap: float = 1.6,
) -> np.ndarray:
    """Random touching ellipsoids, ids 1..N in placement order.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness (seeded by the caller).
    shape : (int, int, int)
        Volume shape (Z, Y, X).
    n : int
        Number of ellipsoids to try to place.
    radius : (float, float)
        Range of the largest semi-axis, in physical units (= pixels in y/x when their spacing is 1).
    spacing : (float, float, float)
        Voxel size (z, y, x).
    min_gap : float
        Centres keep at least ``min_gap * (r1 + r2) / 2`` apart; below 2, neighbours overlap and so touch.

    Returns
    -------
    labels : (Z, Y, X) ndarray of uint32
    """
    spacing_arr = np.asarray(spacing, dtype=float)
    extent = np.asarray(shape) * spacing_arr
    labels = np.zeros(shape, np.uint32)
    centres: list[tuple[np.ndarray, float]] = []
    tries = 0
    while len(centres) < n and tries < 50 * n:
        tries += 1
        axes = rng.uniform(*radius) * np.array([rng.uniform(0.6, 1.0), 1.0, rng.uniform(0.6, 1.0)])
        # A centre keeps most of the object inside the volume in y/x; in z objects may be cut by the block.
        low = np.array([0.0, axes[1], axes[1]])
        centre = rng.uniform(low, extent - low)
        r_mean = float(axes.max())
        if any(np.linalg.norm(centre - c) < min_gap * (r_mean + r) / 2 for c, r in centres):
            continue
        angle = rng.uniform(0, np.pi)  # in-plane orientation of the y/x axes
        lo = np.maximum(np.floor((centre - axes.max()) / spacing_arr).astype(int), 0)
        hi = np.minimum(np.ceil((centre + axes.max()) / spacing_arr).astype(int) + 1, shape)
        z, y, x = (np.arange(a, b) * s - c for a, b, s, c in zip(lo, hi, spacing_arr, centre))
        z, y, x = z[:, None, None], y[None, :, None], x[None, None, :]
        u = x * np.cos(angle) + y * np.sin(angle)
        v = -x * np.sin(angle) + y * np.cos(angle)
        inside = (z / axes[0]) ** 2 + (v / axes[1]) ** 2 + (u / axes[2]) ** 2 <= 1.0
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        inside &= labels[box] == 0  # earlier objects keep their voxels where ellipsoids touch
        if inside.sum() < 30:
            continue
        centres.append((centre, r_mean))
        labels[box][inside] = len(centres)
    return labels


def render_fluorescence_3d(
    rng: np.random.Generator,
    labels: np.ndarray,
    spacing: tuple[float, float, float],
    blur: float = 1.0,
    noise: float = 0.02,
) -> np.ndarray:
    """A uint16 fluorescence volume of ``labels``; ``blur`` is in physical units."""
    spacing_arr = np.asarray(spacing, dtype=float)
    brightness = np.zeros(int(labels.max()) + 1)
    brightness[1:] = rng.uniform(0.35, 1.0, brightness.size - 1)
    inner = ndi.distance_transform_edt(labels > 0, sampling=spacing_arr)
    image = brightness[labels] * (0.6 + 0.4 * np.clip(inner / 4.0, 0, 1))
    image = ndi.gaussian_filter(image, blur / spacing_arr) + 0.05
    image = rng.poisson(image * 400) / 400.0 + rng.normal(0, noise, labels.shape)
    return np.clip(image * 4000, 0, 65535).astype(np.uint16)


def generate_volume(
    index: int, seed: int, shape: tuple[int, int, int], spacing: tuple[float, float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """(image, labels) of synthetic nuclei volume ``index``; a pure function of its arguments."""
    if len(shape) != 3 or len(spacing) != 3:
        raise ValueError(f"A synthetic volume needs a 3-value shape and spacing, got {shape} and {spacing}.")
    rng = np.random.default_rng([seed, index, 3])
    area = shape[1] * shape[2] * spacing[1] * spacing[2]
    depth = shape[0] * spacing[0]
    n = max(4, int(rng.integers(12, 18) * area / (64 * 64) * min(depth, 48.0) / 48.0))
    labels = ellipsoid_labels(rng, tuple(shape), n=n, radius=(7.0, 11.0), spacing=spacing)
    return render_fluorescence_3d(rng, labels, spacing), labels
