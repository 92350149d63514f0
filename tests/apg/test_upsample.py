import numpy as np
import pytest

from apgbench.apg import LogitUpsampler
from apgbench.apg.upsample import bilinear_matrix


def _blobs(n, rng):
    rows, cols = np.indices((256, 256))
    logits = np.empty((n, 256, 256), np.float32)
    for k in range(n):
        cy, cx, r = rng.uniform(10, 200), rng.uniform(10, 240), rng.uniform(2, 40)
        logits[k] = (r - np.hypot(rows - cy, cols - cx)) * 0.5 + rng.normal(0, 0.2, (256, 256))
    return logits


def test_bilinear_matrix_rows_are_convex_weights():
    m = bilinear_matrix(4, 10)
    np.testing.assert_allclose(m.sum(axis=1), 1)
    assert (m >= 0).all() and m[0, 0] == 1 and m[-1, -1] == 1


def test_empty_and_offset():
    up = LogitUpsampler((100, 80), (1024, 819))
    masks = up(np.full((1, 256, 256), -5, np.float32), np.array([0.5]), offset=(10, 20), shape=(200, 200))
    assert (
        masks.areas.tolist() == [0] and masks.shape == (200, 200) and masks.boxes.tolist() == [[0, 0, 0, 0]]
    )


@pytest.mark.heavy
@pytest.mark.parametrize("shape", [(256, 256), (520, 696), (782, 1200)])
def test_matches_sam_postprocess_and_micro_sam_scores(shape, rng):
    torch = pytest.importorskip("torch", reason="the reference is PyTorch's bilinear resize")
    import torch.nn.functional as F

    scale = 1024 / max(shape)
    input_size = (int(shape[0] * scale + 0.5), int(shape[1] * scale + 0.5))
    logits = _blobs(6, rng)
    # SamPredictor.postprocess_masks: to 1024, crop to the input size, to the original size.
    full = F.interpolate(
        torch.from_numpy(logits)[:, None], (1024, 1024), mode="bilinear", align_corners=False
    )
    full = full[..., : input_size[0], : input_size[1]]
    full = F.interpolate(full, shape, mode="bilinear", align_corners=False)[:, 0].numpy()
    masks = LogitUpsampler(shape, input_size)(logits, np.linspace(0.1, 0.6, 6))
    for k in range(6):
        reference = full[k] > 0
        assert np.count_nonzero(masks.full_mask(k) != reference) <= 2  # float rounding at logit ~0 only
        stability = np.count_nonzero(full[k] > 1) / np.count_nonzero(full[k] > -1)
        assert masks.stability_scores[k] == pytest.approx(stability, abs=1e-3)
    np.testing.assert_allclose(masks.iou_predictions, np.linspace(0.1, 0.6, 6), rtol=1e-6)
