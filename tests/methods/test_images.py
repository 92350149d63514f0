"""Input conversions shared by the foundation-model wrappers (methods/images.py)."""

from __future__ import annotations

import numpy as np
import pytest

from apgbench.methods.images import minmax_uint8, to_cellsam, to_float, to_grey, to_pil_rgb, to_rgb_uint8


def test_minmax_uint8_scales_globally_truncates_and_keeps_uint8():
    """The paper's util.py:605-613 (4f6d45e2): global min/max, float32, ``astype`` truncation (not rounding)."""
    image = np.array([[100, 200], [300, 1100]], dtype=np.uint16)
    assert minmax_uint8(image).tolist() == [[0, 25], [51, 255]]  # 25.5 -> 25
    assert minmax_uint8(np.array([0, 1, 2], dtype=np.uint16)).tolist() == [0, 127, 255]  # 127.5 -> 127
    rgb = np.zeros((2, 2, 3), np.float32)
    rgb[..., 0], rgb[0, 0, 2] = 1.0, 2.0  # one scale for all channels: channel 0 maps to 127, not 255
    assert minmax_uint8(rgb)[..., 0].tolist() == [[127, 127], [127, 127]]
    as_uint8 = np.array([[3, 7]], dtype=np.uint8)
    assert minmax_uint8(as_uint8) is as_uint8
    assert not minmax_uint8(np.full((3, 3), 5.0)).any()


@pytest.mark.parametrize("shape", [(6, 5), (6, 5, 2), (6, 5, 3)])
def test_to_rgb_uint8_shapes(shape, rng):
    image = rng.uniform(0, 1000, shape).astype(np.float32)
    rgb = to_rgb_uint8(image)
    assert rgb.shape == (6, 5, 3) and rgb.dtype == np.uint8
    if len(shape) == 2:
        assert (rgb[..., 0] == rgb[..., 2]).all()
    elif shape[-1] == 2:  # (whole-cell, nucleus) -> R, G, and an empty B
        assert not rgb[..., 2].any() and rgb[..., :2].max() == 255


def test_to_pil_rgb_keeps_height_and_width():
    pil = to_pil_rgb(np.zeros((7, 11), dtype=np.uint16))
    assert pil.mode == "RGB" and (pil.height, pil.width) == (7, 11)


def test_grey_and_float():
    image = np.stack([np.full((2, 2), 1), np.full((2, 2), 3)], axis=-1).astype(np.uint8)
    assert to_grey(image).tolist() == [[2.0, 2.0], [2.0, 2.0]]
    assert to_float(image).dtype == np.float32 and to_float(image).shape == (2, 2, 2)


def test_to_cellsam_channel_order():
    cell, nucleus = np.full((2, 2), 1.0), np.full((2, 2), 2.0)
    out = to_cellsam(np.stack([cell, nucleus], axis=-1))
    assert out[..., 0].max() == 0 and (out[..., 1] == 2).all() and (out[..., 2] == 1).all()
    grey = to_cellsam(cell)
    assert grey.shape == (2, 2, 3) and (grey[..., 2] == 1).all() and not grey[..., :2].any()
