"""2D+stitch: our overlap stitching equals µSAM's 3D merge on real slice-wise segmentations; the base class
runs any 2D method on volumes only when asked."""

from __future__ import annotations

import numpy as np
import pytest

from apgbench.datasets import load_dataset
from apgbench.datasets.synthetic3d import ellipsoid_labels
from apgbench.methods import get_method
from apgbench.methods.base import Segmenter
from apgbench.methods.stitch import _unique_ids, overlap_edges, stitch_slices
from apgbench.metrics import mean_segmentation_accuracy


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """True if two label volumes have the same background and the same objects (ids may differ)."""
    if not np.array_equal(a > 0, b > 0):
        return False
    fg = a > 0
    pairs = np.unique(np.stack([a[fg], b[fg]]), axis=1)
    return pairs.shape[1] == np.unique(a[fg]).size == np.unique(b[fg]).size


def musam_merge(planes: list[np.ndarray]) -> np.ndarray:
    merge = pytest.importorskip(
        "micro_sam.multi_dimensional_segmentation", reason="micro-sam (the reference) is not installed"
    ).merge_instance_segmentation_3d
    return merge(_unique_ids(planes), verbose=False)


def slice_segmentations():
    """Per-slice segmentations with real errors: `classic` on each slice of the synthetic volumes."""
    method = get_method("classic")()
    method.prepare("cpu", "nuclei-fluo")
    for sample in list(load_dataset("synthetic-nuclei-3d"))[:2]:
        yield sample.image_id, [method.segment(plane) for plane in sample.image]


@pytest.mark.parametrize("case", list(slice_segmentations()), ids=lambda c: c[0])
def test_equals_musam_merge_on_slice_wise_segmentations(case):
    _, planes = case
    ours, theirs = stitch_slices(planes), musam_merge(planes)
    assert same_partition(ours, theirs)
    assert ours.max() < sum(int(p.max()) for p in planes)  # something was joined


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_recovers_ground_truth_from_relabelled_slices(seed):
    rng = np.random.default_rng(seed)
    true = ellipsoid_labels(rng, (12, 80, 80), n=25, radius=(6.0, 9.0), spacing=(2.0, 1.0, 1.0))
    planes = []
    for plane in true:  # every slice numbers its objects independently
        perm = np.concatenate([[0], rng.permutation(int(true.max())) + 1])
        planes.append(perm[plane])
    ours = stitch_slices(planes)
    assert same_partition(ours, musam_merge(planes))
    # Nearly right, with µSAM's known weaknesses: the overlap is normalised by the lower slice's object, so an
    # ellipsoid's shrinking cap (area ratio < 0.27) comes off, and a large touching contact can join two.
    fg = true > 0
    assert np.array_equal(ours > 0, fg)
    pairs = np.unique(np.stack([ours[fg], true[fg]]), axis=1)
    assert pairs.shape[1] - ours.max() <= 0.1 * ours.max()  # stitched objects spanning two true ones
    assert true.max() <= ours.max() <= 1.3 * true.max()
    assert mean_segmentation_accuracy(true, ours) > 0.7


def test_weights_follow_musam_costs():
    stack = np.zeros((2, 10, 10), np.uint32)
    stack[0, :4, :5] = 1  # 20 pixels, half over object 2 and half over object 3
    stack[1, :2, :5], stack[1, 2:, :5] = 2, 3
    uv, w = overlap_edges(stack)
    assert uv.tolist() == [[1, 2], [1, 3]]
    q = 0.998 * 0.5 + 0.001
    assert w == pytest.approx([1 - np.log((1 - q) / q)] * 2)
    assert stitch_slices(stack)[1].max() == 1  # both attract: one object


def test_low_overlap_stays_apart():
    stack = np.zeros((2, 10, 10), np.uint32)
    stack[0, :5, :5] = 1
    stack[1, 4:9, 4:9] = 1  # overlap 1/25 of the lower object
    out = stitch_slices(stack)
    assert out.max() == 2


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="rule"):
        stitch_slices(np.zeros((2, 4, 4), np.uint8), rule="iou")
    with pytest.raises(ValueError, match="2D label images of one shape"):
        stitch_slices([np.zeros((4, 4)), np.zeros((5, 4))])


class TwoDOnly(Segmenter):
    name = "two-d-only"

    def _segment(self, image):
        from skimage.measure import label

        grey = image.mean(axis=-1) if image.ndim == 3 else image
        return label(grey > grey.mean())


def test_2d_only_method_refuses_a_volume_without_stitch():
    volume = np.zeros((4, 16, 16), np.float32)
    with pytest.raises(ValueError, match=r"segments 2D images only.*--param stitch=overlap"):
        TwoDOnly().segment(volume)
    with pytest.raises(ValueError, match="segments 2D images only"):
        TwoDOnly.volume_mode({})
    with pytest.raises(ValueError, match="Unknown stitch rule"):
        TwoDOnly.volume_mode({"stitch": "nope"})


def test_2d_only_method_runs_on_a_volume_with_stitch():
    volume = np.zeros((4, 16, 16), np.float32)
    volume[:, 2:6, 2:6] = 1
    volume[1:3, 9:14, 9:14] = 1
    method = TwoDOnly(stitch="overlap")
    assert method.volume_mode(method.params) == "2d+stitch"
    labels = method.segment(volume)
    assert labels.shape == volume.shape and labels.dtype == np.uint32
    assert labels.max() == 2 and len(np.unique(labels[:, 3, 3])) == 1
    assert method.segment(volume[0]).shape == (16, 16)  # 2D images still work
    assert method.segment(np.zeros((16, 16, 3)), ndim=2).shape == (16, 16)


def test_volume_shape_is_checked():
    with pytest.raises(ValueError, match="Volume must be"):
        TwoDOnly(stitch="overlap").segment(np.zeros((2, 3, 4, 5, 6)))
    with pytest.raises(ValueError, match="ndim must be"):
        TwoDOnly().segment(np.zeros((4, 4)), ndim=4)


@pytest.mark.parametrize("seed", range(5))
def test_equals_musam_merge_on_perturbed_slices(seed):
    """Slices with the errors of a 2D method (merged neighbours, shifts, halved objects, grown labels)."""
    from skimage.segmentation import expand_labels

    rng = np.random.default_rng(seed)
    true = ellipsoid_labels(rng, (12, 96, 96), n=40, radius=(6.0, 10.0), spacing=(2.0, 1.0, 1.0))
    planes = []
    for plane in true:
        p = plane.copy()
        left, right = p[:, :-1], p[:, 1:]
        touching = (left != right) & (left > 0) & (right > 0)
        for a, b in sorted(set(zip(left[touching].tolist(), right[touching].tolist()))):
            if rng.random() < 0.2:
                p[p == b] = a
        p = np.roll(p, int(rng.integers(-2, 3)), axis=1)
        ids = np.unique(p)[1:]
        for i in rng.choice(ids, max(1, ids.size // 5), replace=False):
            mask = p == i
            cols = np.nonzero(mask)[1]
            p[mask & (np.arange(p.shape[1])[None, :] > np.median(cols))] = p.max() + 1
        planes.append(expand_labels(p, int(rng.integers(0, 2))))
    assert same_partition(stitch_slices(planes), musam_merge(planes))
