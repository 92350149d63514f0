"""``amg`` against the paper's AMG path on a seeded SAM (issue 10, items 5 and 10).

The paper ran micro-sam's ``AutomaticMaskGenerator`` (prepare_baselines.py:21-22, 73-76 at micro-sam
4f6d45e2) and converted its records with ``mask_data_to_segmentation(masks, with_background=True)``
(automatic_segmentation.py:255). apgbench runs segment-anything's ``SamAutomaticMaskGenerator`` (lighter: no
micro-sam install). This test shows, on a real image and SAM ViT-B with seeded random weights, that both
generators return identical records for the same input, and that apgbench's conversion equals the paper's.
micro-sam 1.8's generator class is the one of 4f6d45e2 for ``output_mode="binary_mask"``; its
``mask_data_to_segmentation`` has other defaults, so the paper's is assembled from micro-sam's painting
(``merge_exclusively=False``: a later mask overwrites) and the paper's skimage labelling and background rule.
"""

from __future__ import annotations

import numpy as np
import pytest

from apgbench.methods.preprocess import to_rgb_uint8
from apgbench.methods.sam import amg_records_to_labels

from ._helpers import LIBRARY_WARNINGS, real_crop

pytestmark = [pytest.mark.filterwarnings(w) for w in LIBRARY_WARNINGS] + [
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]

KEYS = ("area", "bbox", "predicted_iou", "stability_score", "point_coords", "crop_box")


def paper_mask_data_to_segmentation(masks):
    """4f6d45e2 instance_segmentation.py:50-117 with with_background=True, min_object_size=0."""
    import skimage as ski
    from micro_sam.util import mask_data_to_segmentation

    painted = mask_data_to_segmentation(masks, merge_exclusively=False, label_masks=False)
    segmentation = ski.measure.label(painted)  # the paper's call: skimage's default connectivity
    ids, sizes = np.unique(segmentation, return_counts=True)
    segmentation[segmentation == ids[np.argmax(sizes)]] = 0
    return ski.segmentation.relabel_sequential(segmentation)[0]


@pytest.mark.heavy
def test_generators_agree_and_conversion_is_the_papers():
    torch = pytest.importorskip("torch", reason="needs torch")
    pytest.importorskip("micro_sam", reason="needs the musam extra (the paper's generator)")
    from micro_sam import util
    from micro_sam.instance_segmentation import AutomaticMaskGenerator
    from segment_anything import SamAutomaticMaskGenerator, SamPredictor, sam_model_registry

    from apgbench.methods.musam import paper_input

    torch.manual_seed(0)
    predictor = SamPredictor(sam_model_registry["vit_b"]().eval())
    with torch.no_grad():  # distinct, non-zero stability scores (see test_musam.random_sam)
        layer = predictor.model.mask_decoder.output_hypernetworks_mlps[0].layers[-1]
        layer.weight.mul_(100)
        layer.bias.mul_(100)
    rgb = to_rgb_uint8(real_crop(256))  # uint16 nuclei: the paper's conversion
    thresholds = {"pred_iou_thresh": 0.0, "stability_score_thresh": 0.5, "box_nms_thresh": 0.7}

    ours = SamAutomaticMaskGenerator(
        predictor.model, points_per_side=8, output_mode="binary_mask", **thresholds
    )
    records = ours.generate(rgb)
    paper = AutomaticMaskGenerator(predictor, points_per_side=8, points_per_batch=64)
    with paper_input():  # the paper's micro-sam left this uint8 image as it is
        paper.initialize(rgb, image_embeddings=util.precompute_image_embeddings(predictor, rgb, ndim=2))
    expected = paper.generate(output_mode="binary_mask", **thresholds)

    assert len(records) == len(expected) > 5
    for a, b in zip(records, expected):
        np.testing.assert_array_equal(a["segmentation"], b["segmentation"])
        assert all(np.allclose(a[k], b[k], rtol=0, atol=0) for k in KEYS), [(a[k], b[k]) for k in KEYS]

    labels = amg_records_to_labels(records, rgb.shape[:2])
    oracle = paper_mask_data_to_segmentation(expected)
    assert labels.max() > 3
    np.testing.assert_array_equal(labels, oracle)
