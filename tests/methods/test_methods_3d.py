"""ais, apg and cellpose on volumes: which library call each wrapper makes, and the real libraries at random
weights on small volumes (heavy)."""

from __future__ import annotations

import numpy as np
import pytest

from apgbench.datasets import load_dataset
from apgbench.methods.cellpose import Cellpose3, CellposeSAM
from apgbench.methods.musam import MicroSamAIS, MicroSamAPG, MicroSamAPGBoundary
from apgbench.metrics import mean_segmentation_accuracy

from ._helpers import LIBRARY_WARNINGS

pytestmark = [pytest.mark.filterwarnings(w) for w in LIBRARY_WARNINGS] + [
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]


def synthetic_volume(depth: int = 8, size: int = 64):
    """A (depth, size, size) crop of the first synthetic-nuclei-3d volume: image and label volume."""
    sample = next(iter(load_dataset("synthetic-nuclei-3d")))
    z0 = (sample.image.shape[0] - depth) // 2
    return sample.image[z0 : z0 + depth, :size, :size], sample.labels[z0 : z0 + depth, :size, :size]


def real_label_volume(depth: int = 8, size: int = 256) -> np.ndarray:
    """A label volume from a real 2D label image: each nucleus a column of ``depth`` slices
    drifting one pixel in x per slice, so objects touch in y/x but never stack in z."""
    from ..conftest import iter_shared_samples, shared_data_dir

    if shared_data_dir() is None:
        pytest.skip("the real samples folder ../shared/data is absent (set APGBENCH_SHARED_DATA to use it)")
    labels = next(lab for _, _, stem, _, lab in iter_shared_samples() if stem == "stardist_tests_img2d")
    labels = labels[:size, :size].astype(np.uint32)
    sizes = np.bincount(labels.ravel())
    labels[sizes[labels] < 60] = 0  # crop-edge fragments below APG's min_size would cap any method's score
    volume = np.zeros((depth, size, size + depth), np.uint32)
    for z in range(depth):
        volume[z, :, z : z + size] = labels
    return volume


def test_volume_modes_declared():
    assert MicroSamAIS.volume_mode({}) == "stitch" and MicroSamAPG.volume_mode({}) == "stitch"
    assert MicroSamAPGBoundary.supports_3d == "stitch"
    assert CellposeSAM.volume_mode({}) == "3d" and Cellpose3.volume_mode({}) == "3d"
    assert CellposeSAM.volume_mode({"stitch_threshold": 0.5}) == "stitch"
    assert CellposeSAM.volume_mode({"stitch": "overlap"}) == "2d+stitch"


def test_apg_3d_with_an_oracle_model_reaches_msa_near_one():
    """APG in 3D: the 2D APG on each slice (oracle model on GT), joined across z by the overlap rule."""
    from apgbench.apg import automatic_prompt_generation
    from apgbench.apg.testing import OracleModel, decoder_maps_from_labels

    labels = real_label_volume(8, 256)
    assert len(np.unique(labels[0])) > 30 and (labels[0] != labels[3]).any()
    method = MicroSamAPG()
    method._prepared = True  # no SAM: each "image" slice is the GT slice, answered by the oracle
    method._segment = lambda plane: automatic_prompt_generation(
        *decoder_maps_from_labels(plane), OracleModel(plane)
    )
    calls = []
    method.slice_progress = lambda done, total: calls.append((done, total))
    pred = method.segment(labels, ndim=3, spacing=(2.0, 1.0, 1.0))
    assert pred.shape == labels.shape and pred.dtype == np.uint32
    assert calls == [(z + 1, 8) for z in range(8)]
    assert mean_segmentation_accuracy(labels, pred) > 0.95
    # Without the merge across slices every slice's objects stay apart: the 3D score collapses.
    per_slice = np.stack([method._segment(p) + (p > 0) * 1000 * z for z, p in enumerate(labels)])
    assert mean_segmentation_accuracy(labels, per_slice.astype(np.uint32)) < 0.5


def test_ais_3d_calls_micro_sams_3d_segmentation(monkeypatch):
    pytest.importorskip("micro_sam", reason="needs the musam extra")
    from micro_sam import automatic_segmentation

    image, _ = synthetic_volume(4, 32)
    seen = {}

    def fake(predictor, segmenter, data, **kwargs):
        seen.update(kwargs, data=data, segmenter=type(segmenter).__name__)
        return np.ones(data.shape, np.uint32)

    monkeypatch.setattr(automatic_segmentation, "automatic_instance_segmentation", fake)
    method = MicroSamAIS(min_size=10)
    method.predictor, method.decoder, method._prepared = object(), object(), True
    out = method.segment(image, ndim=3, spacing=(2.0, 1.0, 1.0))
    assert out.shape == image.shape and out.dtype == np.uint32
    assert seen["ndim"] == 3 and seen["segmenter"] == "InstanceSegmentationWithDecoder"
    assert seen["data"].dtype == np.uint8 and seen["data"].shape == image.shape
    assert seen["min_size"] == 10 and seen["distance_smoothing"] == 1.6 and seen["tile_shape"] is None
    with pytest.raises(ValueError, match="grey"):
        method.segment(np.zeros((4, 32, 32, 3), np.uint8), ndim=3)


class _EvalSpy:
    """Records cellpose ``eval`` keywords; answers with one object per slice."""

    def __init__(self):
        self.kwargs = None

    def eval(self, x, **kwargs):
        self.kwargs = kwargs
        return np.ones(x.shape[:3], np.uint16), None, None


@pytest.mark.parametrize("cls", [CellposeSAM, Cellpose3])
def test_cellpose_3d_modes_and_anisotropy(cls):
    image, _ = synthetic_volume(4, 32)
    for params, spacing, expected in [
        ({}, (2.0, 1.0, 1.0), {"do_3D": True, "anisotropy": 2.0, "z_axis": 0}),
        ({}, None, {"do_3D": True, "anisotropy": None}),
        ({"stitch_threshold": 0.25}, (2.0, 1.0, 1.0), {"do_3D": False, "stitch_threshold": 0.25}),
    ]:
        method = cls(**params)
        method._model, method._prepared = _EvalSpy(), True
        out = method.segment(image, ndim=3, spacing=spacing)
        assert out.shape == image.shape and out.dtype == np.uint32
        assert expected.items() <= method._model.kwargs.items()
        assert ("anisotropy" in method._model.kwargs) == expected["do_3D"]


@pytest.fixture(scope="module")
def tiny_sam():
    return _tiny_sam()


def _tiny_sam():
    """A seeded SAM with a small ViT encoder (same architecture family, fast on CPU) and a random µSAM decoder."""
    torch = pytest.importorskip("torch", reason="needs torch")
    pytest.importorskip("micro_sam", reason="needs the musam extra")
    from micro_sam.instance_segmentation import DecoderAdapter, get_unetr
    from segment_anything import SamPredictor
    from segment_anything.build_sam import _build_sam

    torch.manual_seed(0)
    sam = _build_sam(
        encoder_embed_dim=32,
        encoder_depth=1,
        encoder_num_heads=1,
        encoder_global_attn_indexes=[0],
        checkpoint=None,
    ).eval()
    return SamPredictor(sam), DecoderAdapter(get_unetr(sam.image_encoder, None, device="cpu"))


@pytest.mark.heavy
def test_ais_3d_through_micro_sam_at_random_weights(tiny_sam):
    image, _ = synthetic_volume(2, 64)
    method = MicroSamAIS()
    method.predictor, method.decoder = tiny_sam
    method._prepared = True
    calls = []
    method.slice_progress = lambda done, total: calls.append((done, total))
    out = method.segment(image, ndim=3, spacing=(2.0, 1.0, 1.0))
    assert out.shape == image.shape and out.dtype == np.uint32
    assert calls == [(1, 2), (2, 2)]  # one report per slice, from inside micro-sam's slice loop


@pytest.mark.heavy
def test_apg_3d_through_sam_at_random_weights(tiny_sam, monkeypatch):
    """APG-3D with a real (small, random) SAM: each slice's 2D APG, then the overlap merge across z."""
    from apgbench.methods import musam3d

    image, _ = synthetic_volume(2, 64)
    # Random decoder maps hover around 0.5: slightly stricter distance thresholds keep the prompts few.
    method = MicroSamAPG(center_distance_threshold=0.46, boundary_distance_threshold=0.46)
    method.predictor, method.decoder = tiny_sam
    method._prepared = True
    planes = []
    stitch = musam3d.stitch_slices
    monkeypatch.setattr(musam3d, "stitch_slices", lambda p, rule: planes.extend(p) or stitch(p, rule))
    out = method.segment(image, ndim=3, spacing=(2.0, 1.0, 1.0))
    assert out.shape == image.shape and out.dtype == np.uint32
    assert len(planes) == 2 and all(p.shape == image.shape[1:] for p in planes)
    np.testing.assert_array_equal(out, stitch(planes, "overlap"))


@pytest.mark.heavy
def test_cellpose_sam_3d_stitch_at_random_weights():
    pytest.importorskip("cellpose", reason="needs the cellpose extra")
    image, _ = synthetic_volume(2, 64)
    method = CellposeSAM(random_weights=True, stitch_threshold=0.5, use_bfloat16=False)
    method.prepare("cpu", "nuclei-fluo")
    out = method.segment(image, ndim=3, spacing=(2.0, 1.0, 1.0))
    assert out.shape == image.shape and out.dtype == np.uint32
