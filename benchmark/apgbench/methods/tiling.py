"""Tiling for models with a fixed object budget (SAM3: 200 queries): regions, their split, object ownership."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


# -- tiling for models with an object budget ---------------------------------------------------------------
@dataclass(frozen=True)
class Region:
    """A tile of an image: ``tile`` is what the model sees, ``core`` the part whose objects the tile owns.

    Both are ``(row0, row1, col0, col1)`` in image coordinates; the cores of sibling tiles partition
    their parent's core, so every object is kept by exactly one tile (the one holding its centroid).
    """

    tile: tuple[int, int, int, int]
    core: tuple[int, int, int, int]

    @property
    def slices(self) -> tuple[slice, slice]:
        """The tile as numpy slices."""
        r0, r1, c0, c1 = self.tile
        return slice(r0, r1), slice(c0, c1)


def whole_image(shape: tuple[int, ...]) -> Region:
    """The region covering the full image."""
    return Region((0, shape[0], 0, shape[1]), (0, shape[0], 0, shape[1]))


def split_region(region: Region, shape: tuple[int, ...], overlap: int) -> list[Region]:
    """Split ``region``'s core into 2x2 sub-cores; each child's tile is its core grown by ``overlap``.

    Cores are split at their midpoints (a side of one pixel is not split), tiles are clipped to ``shape``.
    """
    r0, r1, c0, c1 = region.core
    rows = [(r0, r1)] if r1 - r0 < 2 else [(r0, (r0 + r1) // 2), ((r0 + r1) // 2, r1)]
    cols = [(c0, c1)] if c1 - c0 < 2 else [(c0, (c0 + c1) // 2), ((c0 + c1) // 2, c1)]
    children = []
    for a, b in rows:
        for c, d in cols:
            tile = (
                max(a - overlap, 0),
                min(b + overlap, shape[0]),
                max(c - overlap, 0),
                min(d + overlap, shape[1]),
            )
            children.append(Region(tile, (a, b, c, d)))
    return children


def centroid_in_core(mask: np.ndarray, region: Region) -> bool:
    """Whether the centroid of ``mask`` (given in tile coordinates) lies in ``region``'s core."""
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return False
    row, col = rows.mean() + region.tile[0], cols.mean() + region.tile[2]
    r0, r1, c0, c1 = region.core
    return r0 <= row < r1 and c0 <= col < c1
