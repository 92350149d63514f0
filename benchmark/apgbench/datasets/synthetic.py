"""Built-in synthetic datasets, one per domain: seeded, generated on the fly, nothing to download.

They look enough like their domain to exercise every method's input handling (grey fluorescence, bright
cells, phase-contrast halos, RGB H&E) and contain touching objects, intensity variation and noise, so that
a naive threshold does not solve them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

import numpy as np
import skimage as ski
from scipy import ndimage as ndi

from ..errors import UnknownIdError
from .prepared import Sample
from .schema import DatasetConfig


def _ellipse_labels(
    rng: np.random.Generator, shape: tuple[int, int], n: int, radius: tuple[float, float], min_gap: float
) -> np.ndarray:
    """Random non-identical ellipses; centres keep ``min_gap`` x mean radius apart, so neighbours touch."""
    labels = np.zeros(shape, np.uint32)
    centres: list[tuple[float, float, float]] = []
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    tries = 0
    while len(centres) < n and tries < 50 * n:
        tries += 1
        r_major = rng.uniform(*radius)
        r_minor = r_major * rng.uniform(0.6, 1.0)
        cy, cx = rng.uniform(r_major, shape[0] - r_major), rng.uniform(r_major, shape[1] - r_major)
        if any(np.hypot(cy - y, cx - x) < min_gap * (r_major + r) / 2 for y, x, r in centres):
            continue
        angle = rng.uniform(0, np.pi)
        dy, dx = rows - cy, cols - cx
        u = dx * np.cos(angle) + dy * np.sin(angle)
        v = -dx * np.sin(angle) + dy * np.cos(angle)
        inside = (u / r_major) ** 2 + (v / r_minor) ** 2 <= 1.0
        inside &= labels == 0  # earlier objects keep their pixels where ellipses touch
        if inside.sum() < 20:
            continue
        centres.append((cy, cx, r_major))
        labels[inside] = len(centres)
    return labels


def _cell_labels(rng: np.random.Generator, shape: tuple[int, int], n: int) -> np.ndarray:
    """Clusters of touching cells: Voronoi regions of random seeds inside a blobby foreground."""
    seeds = np.zeros(shape, np.uint32)
    coords = np.stack([rng.integers(12, shape[0] - 12, n), rng.integers(12, shape[1] - 12, n)], axis=1)
    seeds[coords[:, 0], coords[:, 1]] = np.arange(1, n + 1)
    distance = ndi.distance_transform_edt(seeds == 0)
    foreground = distance < rng.uniform(14, 20)
    foreground = ndi.binary_opening(foreground, structure=ski.morphology.disk(3))
    labels = ski.segmentation.watershed(distance, seeds, mask=foreground)
    sizes = np.bincount(labels.ravel())
    labels[sizes[labels] < 40] = 0  # drop slivers cut off by the opening
    return ski.segmentation.relabel_sequential(labels)[0].astype(np.uint32)


def _render_fluorescence(
    rng: np.random.Generator, labels: np.ndarray, blur: float, noise: float
) -> np.ndarray:
    ids = np.unique(labels)[1:]
    brightness = np.zeros(labels.max() + 1)
    brightness[ids] = rng.uniform(0.35, 1.0, ids.size)
    inner = ndi.distance_transform_edt(labels > 0)
    image = brightness[labels] * (0.6 + 0.4 * np.clip(inner / 6.0, 0, 1))
    image = ndi.gaussian_filter(image, blur) + 0.05
    image = rng.poisson(image * 400) / 400.0 + rng.normal(0, noise, labels.shape)
    return np.clip(image * 4000, 0, 65535).astype(np.uint16)


def _render_labelfree(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    boundary = ski.segmentation.find_boundaries(labels, mode="inner")
    halo = ndi.gaussian_filter(
        (labels == 0).astype(float) * ndi.binary_dilation(labels > 0, iterations=3), 1.5
    )
    texture = ndi.gaussian_filter(rng.normal(0, 1, labels.shape), 2.0)
    image = 0.5 + 0.35 * halo - 0.2 * (labels > 0) - 0.15 * boundary + 0.04 * texture
    image += rng.normal(0, 0.03, labels.shape)
    return np.clip(image * 255, 0, 255).astype(np.uint8)


def _render_histo(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    stroma = 0.5 + 0.5 * ndi.gaussian_filter(rng.random(labels.shape), 3)
    hematoxylin = ndi.gaussian_filter((labels > 0) * rng.uniform(0.7, 1.0, labels.max() + 1)[labels], 0.8)
    eosin = 0.35 * stroma * (labels == 0)
    # Beer-Lambert mixing of two stains: H is blue-purple, E is pink.
    od = hematoxylin[..., None] * np.array([0.65, 0.70, 0.29]) * 1.6 + eosin[..., None] * np.array(
        [0.07, 0.99, 0.11]
    )
    rgb = np.exp(-od * 1.8) + rng.normal(0, 0.02, od.shape)
    return np.clip(rgb * 255, 0, 255).astype(np.uint8)


def generate_sample(
    kind: str, index: int, seed: int, shape: tuple[int, ...], spacing: tuple[float, ...] | None = None
) -> Sample:
    """Generate one synthetic sample of ``kind`` (nuclei, cells, labelfree, histo, nuclei-3d), reproducibly.

    ``nuclei-3d`` makes a (Z, Y, X) volume with voxel size ``spacing`` (z, y, x; default (2, 1, 1)).
    """
    if kind == "nuclei-3d":
        from .synthetic3d import generate_volume

        spacing = tuple(spacing) if spacing is not None else (2.0, 1.0, 1.0)
        image, labels = generate_volume(index, seed, tuple(shape), spacing)
        meta = {"kind": kind, "seed": seed, "index": index, "spacing": list(spacing)}
        return Sample(f"{kind}-{index:03d}", image, labels, meta)
    rng = np.random.default_rng([seed, index])
    if kind == "nuclei":
        labels = _ellipse_labels(rng, shape, n=int(rng.integers(25, 45)), radius=(7, 13), min_gap=1.6)
        image = _render_fluorescence(rng, labels, blur=1.0, noise=0.02)
    elif kind == "cells":
        labels = _cell_labels(rng, shape, n=int(rng.integers(20, 35)))
        image = _render_fluorescence(rng, labels, blur=1.5, noise=0.03)
    elif kind == "labelfree":
        labels = _cell_labels(rng, shape, n=int(rng.integers(15, 25)))
        image = _render_labelfree(rng, labels)
    elif kind == "histo":
        labels = _ellipse_labels(rng, shape, n=int(rng.integers(30, 50)), radius=(5, 10), min_gap=1.2)
        image = _render_histo(rng, labels)
    else:
        raise ValueError(f"Unknown synthetic kind '{kind}'.")
    return Sample(f"{kind}-{index:03d}", image, labels, {"kind": kind, "seed": seed, "index": index})


class SyntheticDataset:
    """A built-in dataset generated from its config's ``format.options`` (kind, n_images, seed, shape)."""

    def __init__(self, config: DatasetConfig) -> None:
        options = config.format.options
        self.config = config
        self.kind = str(options["kind"])
        self.seed = int(options.get("seed", 0))
        self.shape = tuple(options.get("shape", (256, 256)))
        self.spacing = tuple(config.voxel_size) if config.voxel_size else None
        self.image_ids = [f"{self.kind}-{i:03d}" for i in range(int(options.get("n_images", 6)))]

    def __len__(self) -> int:
        return len(self.image_ids)

    def __iter__(self) -> Iterator[Sample]:
        for index in range(len(self.image_ids)):
            yield generate_sample(self.kind, index, self.seed, self.shape, self.spacing)

    def get(self, image_id: str) -> Sample:
        """Generate the sample with this id."""
        if image_id not in self.image_ids:
            raise UnknownIdError(f"No image '{image_id}' in dataset '{self.config.id}'.")
        return generate_sample(self.kind, self.image_ids.index(image_id), self.seed, self.shape, self.spacing)

    def fingerprint(self) -> str:
        """Hash of the generator settings (the data is a pure function of them and the package version)."""
        from .. import __version__

        settings = [__version__, self.kind, self.seed, self.shape, len(self)]
        payload = json.dumps(settings + ([self.spacing] if self.spacing else []))
        return hashlib.sha256(payload.encode()).hexdigest()
