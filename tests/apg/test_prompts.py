import numpy as np
import pytest
from scipy import ndimage as ndi

from apgbench.apg import derive_prompts
from apgbench.apg.prompts import component_centers
from apgbench.apg.testing import decoder_maps_from_labels


def test_component_centers_at_distance_maximum_first_in_raster_order():
    comps = np.zeros((20, 20), int)
    comps[2:7, 2:9] = 1  # 5 x 7 rectangle: the maxima form a row, the first one wins
    comps[10:19, 10:19] = 2
    points = component_centers(comps)
    assert points.tolist() == [[4, 4], [14, 14]]


def test_component_on_image_border_only():
    comps = np.zeros((10, 10), int)
    comps[0, 3:6] = 1  # lies on the border: distance 0 everywhere, micro-sam returns the box corner
    assert component_centers(comps).tolist() == [[0, 3]]


def test_components_one_prompt_per_object_inside_it():
    labels = np.zeros((80, 80), np.uint32)
    labels[5:30, 5:30] = 1
    labels[5:30, 30:60] = 2  # touching neighbour
    rows, cols = np.indices(labels.shape)
    labels[np.hypot(rows - 60, cols - 40) < 12] = 3
    points = derive_prompts(*decoder_maps_from_labels(labels))
    assert sorted(labels[points[:, 0], points[:, 1]].tolist()) == [1, 2, 3]


def test_boundary_maxima_prompts_inside_objects():
    labels = np.zeros((80, 80), np.uint32)
    rows, cols = np.indices(labels.shape)
    labels[np.hypot(rows - 20, cols - 20) < 10] = 1
    labels[np.hypot(rows - 50, cols - 55) < 15] = 2
    points = derive_prompts(*decoder_maps_from_labels(labels), mode="boundary-maxima")
    hit = labels[points[:, 0], points[:, 1]]
    assert set(hit.tolist()) == {1, 2} and (hit > 0).all()


def test_thresholds_and_unknown_mode():
    fg = np.ones((10, 10), np.float32)
    dist = np.ones((10, 10), np.float32)
    dist[4:6, 4:6] = 0.1
    assert derive_prompts(fg, dist, dist).tolist() == [[4, 4]]
    assert len(derive_prompts(fg * 0.4, dist, dist)) == 0  # below t_fg
    assert len(derive_prompts(fg, dist, dist, center_distance_threshold=0.05)) == 0
    with pytest.raises(ValueError, match="prompt mode"):
        derive_prompts(fg, dist, dist, mode="grid")


def test_decoder_maps_follow_training_targets():
    labels = np.zeros((40, 40), np.uint32)
    labels[5:16, 5:16] = 7
    labels[30:33, 30:33] = 8  # 9 px: below the training min_size 25, becomes background
    fg, dc, db = decoder_maps_from_labels(labels)
    assert fg.dtype == dc.dtype == db.dtype == np.float32
    assert fg[10, 10] == 1 and fg[31, 31] == 0 and dc[0, 0] == 1 and db[0, 0] == 1
    assert dc[10, 10] == 0 and db[10, 10] == 0  # the center
    assert dc[5:16, 5:16].max() == pytest.approx(1, abs=1e-5)
    assert db[5, 10] == pytest.approx(1, abs=1e-5)  # inner boundary
    # center distance grows with the Euclidean distance from the center
    expected = np.hypot(*np.indices((11, 11)) - 5)
    np.testing.assert_allclose(dc[5:16, 5:16], expected / expected.max(), atol=1e-5)
    assert ndi.label(fg)[1] == 1


def test_component_prompts_are_8_connected_by_default_like_the_paper():
    """Paper (instance_segmentation.py:1369 at 4f6d45e2): skimage's label, connectivity 2."""
    fg = np.ones((20, 20), np.float32)
    dist = np.ones((20, 20), np.float32)
    dist[3:6, 3:6] = dist[6:9, 6:9] = 0.1  # two seed squares touching at a corner
    assert len(derive_prompts(fg, dist, dist)) == 1
    assert len(derive_prompts(fg, dist, dist, connectivity=1)) == 2


def test_boundary_maxima_is_micro_sams_boundary_distances_rule():
    """peak_local_max(1 - bd, min_distance=5, threshold_abs=0.25) over the image, background (fg < t_fg) at 0.

    t_b plays no part (a peak with bd 0.6 counts), peaks below 0.25 do not, peaks closer than 5 px merge,
    peaks on the image border count, and the output is ordered by peak height.
    """
    fg = np.ones((40, 60), np.float32)
    db = np.ones((40, 60), np.float32)
    dc = np.ones((40, 60), np.float32)
    db[10, 10] = 0.6  # 1 - bd = 0.4 >= 0.25 although bd > t_b
    db[10, 30] = 0.8  # 0.2 < threshold_abs: no prompt
    db[30, 10], db[30, 13] = 0.2, 0.3  # 3 px apart: only the higher peak
    db[0, 50] = 0.1  # on the border
    db[30, 40] = 0.05
    fg[30, 40] = 0.4  # background: set to 0
    points = derive_prompts(fg, dc, db, mode="boundary-maxima")
    assert points.tolist() == [[0, 50], [30, 10], [10, 10]]
    assert derive_prompts(fg, dc, db, mode="boundary-maxima", threshold_abs=0.5).tolist() == [
        [0, 50],
        [30, 10],
    ]
    spread = derive_prompts(fg, dc, db, mode="boundary-maxima", min_distance=2)
    assert [30, 13] in spread.tolist()
