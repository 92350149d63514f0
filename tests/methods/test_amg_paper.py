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

from apgbench.methods.amg import amg_records_to_labels
from apgbench.methods.images import to_rgb_uint8

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
    from micro_sam.instance_segmentation import AutomaticMaskGenerator
    from segment_anything import SamAutomaticMaskGenerator, SamPredictor, sam_model_registry

    from apgbench.methods.musam import paper_input

    torch.manual_seed(0)
    predictor = SamPredictor(sam_model_registry["vit_b"]().eval())
    with torch.no_grad():  # distinct, non-zero stability scores for every mask token (see test_musam)
        for mlp in predictor.model.mask_decoder.output_hypernetworks_mlps:
            mlp.layers[-1].weight.mul_(100)
            mlp.layers[-1].bias.mul_(100)
    rgb = to_rgb_uint8(real_crop(256))  # uint16 nuclei: the paper's conversion
    # Random masks are large: without box NMS (1.0) many records reach the comparison and the painting.
    thresholds = {"pred_iou_thresh": 0.0, "stability_score_thresh": 0.5, "box_nms_thresh": 1.0}

    ours = SamAutomaticMaskGenerator(
        predictor.model, points_per_side=8, output_mode="binary_mask", **thresholds
    )
    # One ViT-B pass (minutes on 2 cores): keep the embedding SAM's generator computes and give it to
    # micro-sam's, whose own computation is the same predictor.set_image call on the same uint8 image
    # (test_musam_input checks that input bit for bit).
    embedding = {}
    set_image = ours.predictor.set_image

    def recording_set_image(image, *args, **kwargs):
        assert np.array_equal(image, rgb)
        set_image(image, *args, **kwargs)
        embedding.update(
            features=ours.predictor.features.clone(),
            input_size=ours.predictor.input_size,
            original_size=ours.predictor.original_size,
        )

    ours.predictor.set_image = recording_set_image
    records = ours.generate(rgb)
    paper = AutomaticMaskGenerator(predictor, points_per_side=8, points_per_batch=64)
    with paper_input():  # the paper's micro-sam left this uint8 image as it is
        paper.initialize(rgb, image_embeddings=embedding)
    expected = paper.generate(output_mode="binary_mask", **thresholds)

    assert len(records) == len(expected) > 5
    for a, b in zip(records, expected):
        np.testing.assert_array_equal(a["segmentation"], b["segmentation"])
        assert all(np.allclose(a[k], b[k], rtol=0, atol=0) for k in KEYS), [(a[k], b[k]) for k in KEYS]

    labels = amg_records_to_labels(records, rgb.shape[:2])
    oracle = paper_mask_data_to_segmentation(expected)
    assert labels.max() > 3
    np.testing.assert_array_equal(labels, oracle)


def test_amg_defaults_are_the_paper_generators():
    """amg's generator parameters equal micro-sam's AutomaticMaskGenerator defaults (4f6d45e2 :372-381, :516-523).

    micro-sam 1.8's class is that of 4f6d45e2 for binary-mask output, so its signature is the reference.
    """
    import inspect

    pytest.importorskip("micro_sam", reason="needs the musam extra (the paper's generator)")
    from micro_sam.instance_segmentation import AutomaticMaskGenerator

    from apgbench.methods.sam import SamAMG

    defaults = {}
    for function in (AutomaticMaskGenerator.__init__, AutomaticMaskGenerator.generate):
        for name, parameter in inspect.signature(function).parameters.items():
            defaults[name] = parameter.default
    ours = SamAMG().params
    for key in ("points_per_side", "pred_iou_thresh", "stability_score_thresh", "box_nms_thresh"):
        assert ours[key] == defaults[key], key
    assert ours["min_mask_region_area"] == defaults["min_mask_region_area"] == 0
    assert defaults["points_per_batch"] is None and ours["points_per_batch"] == 64  # None -> 64 off mps
    assert defaults["crop_n_layers"] == 0  # segment-anything's default too: one crop, the whole image
