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
