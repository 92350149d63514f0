"""Input conversions, tiling and weights helpers shared by the foundation-model wrappers."""

from __future__ import annotations

import numpy as np
import pytest

from apgbench.methods.base import MethodUnavailableError
from apgbench.methods.preprocess import (
    centroid_in_core,
    minmax_uint8,
    owning_distribution,
    resolve_checkpoint,
    split_region,
    to_cellsam,
    to_channels_last,
    to_grey,
    to_pil_rgb,
    to_rgb_uint8,
    weights_root,
    whole_image,
)


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


def test_grey_and_channels_last():
    image = np.stack([np.full((2, 2), 1), np.full((2, 2), 3)], axis=-1).astype(np.uint8)
    assert to_grey(image).tolist() == [[2.0, 2.0], [2.0, 2.0]]
    assert to_channels_last(image).dtype == np.float32 and to_channels_last(image).shape == (2, 2, 2)


def test_to_cellsam_channel_order():
    cell, nucleus = np.full((2, 2), 1.0), np.full((2, 2), 2.0)
    out = to_cellsam(np.stack([cell, nucleus], axis=-1))
    assert out[..., 0].max() == 0 and (out[..., 1] == 2).all() and (out[..., 2] == 1).all()
    grey = to_cellsam(cell)
    assert grey.shape == (2, 2, 3) and (grey[..., 2] == 1).all() and not grey[..., :2].any()


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


def test_weights_root_env(monkeypatch, tmp_path):
    monkeypatch.setenv("APGBENCH_WEIGHTS_DIR", str(tmp_path))
    assert weights_root() == tmp_path


def test_resolve_checkpoint_explicit_and_default(tmp_path):
    default = tmp_path / "w.pth"
    with pytest.raises(MethodUnavailableError, match="does not exist"):
        resolve_checkpoint(tmp_path / "nope.pth", default, "http://127.0.0.1:9/w.pth", "amg")
    default.write_bytes(b"x")
    assert resolve_checkpoint(None, default, "http://127.0.0.1:9/w.pth", "amg") == default


def test_resolve_checkpoint_failed_download_names_file_and_url(tmp_path):
    pytest.importorskip("torch", reason="downloads go through torch.hub")
    default = tmp_path / "sub" / "w.pth"
    with pytest.raises(MethodUnavailableError) as err:
        resolve_checkpoint(None, default, "http://127.0.0.1:9/w.pth", "amg")
    assert str(default) in str(err.value) and "http://127.0.0.1:9/w.pth" in str(err.value)
    assert not default.exists() and not default.with_name("w.pth.part").exists()


def test_owning_distribution_of_segment_anything():
    pytest.importorskip("segment_anything", reason="segment-anything is not installed")
    owner = owning_distribution("segment_anything", "predictor.py")
    assert owner is not None and owner.split("==")[0] in {
        "segment-anything",
        "segment-anything-py",
        "segment_anything",
    }
    assert owning_distribution("not_a_module_here", "x.py") is None
