"""The paper's last APG step changes nothing after apgbench's painting (issue 10, item 11).

The paper's script ends APG with ``mask_data_to_segmentation(masks, with_background=False)`` on the
generator's records (prepare_baselines.py:24-31 at micro-sam 4f6d45e2), which ``_to_masks`` built from the
painted label image (one record per label: ``segmentation == label``, its area and ``seg_id``). At 4f6d45e2
that function paints the records largest first with their ``seg_id`` (a later one overwriting), labels the
result with skimage's default (8-) connectivity and renumbers consecutively. It is assembled here from
micro-sam 1.8's painting (``merge_exclusively=False``, no labelling) and the paper's skimage calls.
"""

from __future__ import annotations

import numpy as np
import pytest

from apgbench.apg import PromptMasks, automatic_prompt_generation
from apgbench.apg.testing import decoder_maps_from_labels

from ..conftest import iter_shared_samples, shared_data_dir


class NoisyDiskModel:
    """Answers each point with a disk of random radius, with holes and stray pixels: many pieces."""

    def __init__(self, shape, seed=0):
        self.shape, self.rng = shape, np.random.default_rng(seed)
        self.rows, self.cols = np.indices(shape)

    def predict_points(self, points):
        masks = []
        for row, col in np.asarray(points).reshape(-1, 2):
            radius = self.rng.uniform(4, 14)
            disk = np.hypot(self.rows - row, self.cols - col) <= radius
            masks.append(disk ^ (self.rng.random(self.shape) < 0.02))
        ious = self.rng.uniform(0.5, 1.0, len(masks))
        return PromptMasks.from_masks(np.array(masks).reshape(-1, *self.shape), ious)


def papers_last_step(segmentation):
    import skimage as ski
    from micro_sam.util import mask_data_to_segmentation

    props = ski.measure.regionprops(segmentation)
    if not props:
        return np.zeros(segmentation.shape, dtype=np.uint32)  # prepare_baselines.py:28-29
    records = [{"segmentation": segmentation == p.label, "area": p.area, "seg_id": p.label} for p in props]
    painted = mask_data_to_segmentation(records, merge_exclusively=False, label_masks=False)
    return ski.segmentation.relabel_sequential(ski.measure.label(painted))[0]


@pytest.mark.parametrize("stem", ["stardist_tests_img2d", "patch1"])
def test_final_mask_data_to_segmentation_is_identity(stem):
    pytest.importorskip("micro_sam", reason="needs the musam extra (micro-sam's painting)")
    if shared_data_dir() is None:
        pytest.skip("the real samples folder ../shared/data is absent")
    labels = next(s[4] for s in iter_shared_samples() if s[2] == stem)
    maps = decoder_maps_from_labels(labels)
    for params in ({}, {"min_size": 0}, {"connectivity": 1}):
        ours = automatic_prompt_generation(*maps, NoisyDiskModel(labels.shape), **params)
        assert ours.max() > 10
        np.testing.assert_array_equal(papers_last_step(ours), ours)
    # The check has teeth: without the split into pieces, the paper's last step does change the result.
    whole = automatic_prompt_generation(*maps, NoisyDiskModel(labels.shape), split_components=False)
    assert not np.array_equal(papers_last_step(whole), whole)
