"""Tiles for models with an object budget (methods/tiling.py)."""

from __future__ import annotations

import numpy as np

from apgbench.methods.tiling import centroid_in_core, split_region, whole_image


def test_split_region_cores_partition_the_image():
    shape = (100, 70)
    children = split_region(whole_image(shape), shape, overlap=8)
    cover = np.zeros(shape, dtype=int)
    for child in children:
        r0, r1, c0, c1 = child.core
        cover[r0:r1, c0:c1] += 1
        t0, t1, s0, s1 = child.tile
        assert t0 <= r0 and t1 >= r1 and s0 <= c0 and s1 >= c1
        assert t0 >= 0 and s0 >= 0 and t1 <= shape[0] and s1 <= shape[1]
    assert (cover == 1).all()
    grandchildren = [g for child in children for g in split_region(child, shape, 8)]
    cover[:] = 0
    for g in grandchildren:
        r0, r1, c0, c1 = g.core
        cover[r0:r1, c0:c1] += 1
    assert len(grandchildren) == 16 and (cover == 1).all()


def test_centroid_in_core_uses_image_coordinates():
    region = split_region(whole_image((20, 20)), (20, 20), overlap=4)[3]  # core rows/cols 10..20, tile 6..20
    mask = np.zeros((14, 14), dtype=bool)
    mask[5:7, 5:7] = True  # centroid (11.5, 11.5) in the image
    assert centroid_in_core(mask, region)
    mask[:] = False
    mask[0:2, 0:2] = True  # centroid (6.5, 6.5): in the tile's overlap, owned by another core
    assert not centroid_in_core(mask, region)
    assert not centroid_in_core(np.zeros((14, 14), bool), region)
