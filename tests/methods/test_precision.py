"""``precision=fp32|bf16|fp16`` of the SAM-family wrappers: autocast on the model's modules, float32 outputs,
validated values, and the real libraries running their encoders and mask decoders in bf16 (heavy)."""

from __future__ import annotations

import numpy as np
import pytest

from apgbench.methods import ParameterError, get_method
from apgbench.plan import plan_run

from ._helpers import LIBRARY_WARNINGS, assert_valid_labels, real_crop

pytestmark = [pytest.mark.filterwarnings(w) for w in LIBRARY_WARNINGS] + [
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]
SAM_FAMILY = ["ais", "apg", "apg-bd", "apg-ref", "amg", "sam2-amg"]


@pytest.mark.parametrize("method", SAM_FAMILY)
def test_precision_is_a_checked_parameter_with_the_paper_default(method):
    cls = get_method(method)
    assert cls.default_params["precision"] == "fp32"
    assert cls(precision="bf16").params["precision"] == "bf16"
    with pytest.raises(ParameterError, match=r"precision.*one of fp32, bf16, fp16, got 'fp8'"):
        cls(precision="fp8")


def test_bad_precision_fails_when_planned(tmp_path):
    with pytest.raises(ParameterError, match="one of fp32, bf16, fp16"):
        plan_run("synthetic-nuclei", "apg", {"precision": "half"}, results_root=tmp_path)


def test_module_runs_in_the_precision_and_returns_float32():
    torch = pytest.importorskip("torch", reason="needs torch")
    from apgbench.methods.precision import set_module_precision

    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.GELU(), torch.nn.Linear(64, 64))
    inner: list = []
    module[0].register_forward_hook(lambda m, i, o: inner.append(o.dtype))
    x = torch.randn(8, 64)
    with torch.no_grad():
        reference = module(x)
        set_module_precision([module], "bf16", "cpu")
        set_module_precision([module], "bf16", "cpu")  # idempotent: wrapped once
        low = module(x)
        set_module_precision([module], "fp32", "cpu")
        restored = module(x)
    assert inner == [torch.float32, torch.bfloat16, torch.float32]
    assert low.dtype == torch.float32 and not torch.equal(low, reference)
    torch.testing.assert_close(low, reference, rtol=0.05, atol=0.05)
    assert torch.equal(restored, reference) and "forward" not in vars(module)


def test_nested_outputs_are_cast_back():
    torch = pytest.importorskip("torch", reason="needs torch")
    from apgbench.methods.precision import to_float32

    half = torch.ones(2, dtype=torch.bfloat16)
    out = to_float32({"a": (half, [half]), "b": torch.ones(2, dtype=torch.int64), "c": "text"})
    assert out["a"][0].dtype == out["a"][1][0].dtype == torch.float32
    assert out["b"].dtype == torch.int64 and out["c"] == "text"


def _crop_labels(size: int) -> np.ndarray:
    """The labels of :func:`real_crop`'s image, same crop."""
    import tifffile

    from ..conftest import shared_data_dir

    path = shared_data_dir() / "nuclei-fluo" / "dsb2018" / "stardist_data_img2d_label.tif"
    return tifffile.imread(path)[:size, :size]


def _dtype_spy(module):
    """Record the output dtype of ``module``'s first linear or convolution layer (autocast casts in the op)."""
    import torch

    seen: list = []
    kinds = (torch.nn.Linear, torch.nn.Conv2d, torch.nn.ConvTranspose2d)
    layer = next(m for m in module.modules() if isinstance(m, kinds))
    layer.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    return seen


@pytest.mark.heavy
def test_musam_bf16_runs_encoder_and_decoders_in_bf16(monkeypatch, tmp_path):
    """apg and apg-ref at bf16 on a small seeded SAM: the encoder, µSAM decoder and SAM's mask decoder
    compute in bf16, micro-sam gets float32 embeddings and maps, and fp32 and bf16 never share a stage."""
    torch = pytest.importorskip("torch", reason="needs torch")
    from micro_sam import instance_segmentation

    from apgbench.apg.testing import decoder_maps_from_labels

    from .test_methods_3d import _tiny_sam

    checkpoint = tmp_path / "tiny.pt"
    checkpoint.write_text("built in memory")
    image = real_crop(256)
    for precision, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        predictor, decoder = _tiny_sam()
        monkeypatch.setattr(
            instance_segmentation, "get_predictor_and_decoder", lambda *a, p=predictor, d=decoder, **k: (p, d)
        )
        spies = [
            _dtype_spy(m) for m in (predictor.model.image_encoder, decoder, predictor.model.mask_decoder)
        ]
        apg = get_method("apg")(checkpoint=str(checkpoint), precision=precision)
        apg.prepare("cpu", "nuclei-fluo")
        ref = get_method("apg-ref")(checkpoint=str(checkpoint), precision=precision)
        ref.share_model(apg)
        stage = apg.shared_stage(image)
        assert stage.embeddings["features"].dtype == np.float32
        assert all(m.dtype == np.float32 for m in stage.maps)
        maps = decoder_maps_from_labels(_crop_labels(256))
        for method in (apg, ref):
            assert_valid_labels(method.segment_shared(image, stage._replace(maps=maps)), image.shape)
        assert [set(s) for s in spies] == [{dtype}] * 3, precision
        assert apg.info()["precision"] == {"bf16": "bfloat16", "fp32": "float32"}[precision]
    assert get_method("apg")(precision="bf16").shared_key() != get_method("apg")().shared_key()


@pytest.mark.heavy
@pytest.mark.parametrize("method", ["amg", "sam2-amg"])
def test_amg_bf16_real_library(method):
    """SAM's and SAM 2's generators at bf16: encoder and mask decoder in bf16, masks painted as at fp32."""
    torch = pytest.importorskip("torch", reason="needs torch")
    pytest.importorskip(
        {"amg": "segment_anything", "sam2-amg": "sam2"}[method], reason="library not installed"
    )
    image = real_crop(256)
    params = {"points_per_side": 4, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}
    with get_method(method)(random_weights=True, precision="bf16", **params) as segmenter:
        segmenter.prepare("cpu")
        net = segmenter._generator.predictor.model
        decoder = getattr(net, "mask_decoder", None) or net.sam_mask_decoder
        spies = [_dtype_spy(net.image_encoder), _dtype_spy(decoder)]
        assert_valid_labels(segmenter.segment(image), image.shape)
        assert segmenter.info()["precision"] == "bfloat16"
    assert [set(s) for s in spies] == [{torch.bfloat16}] * 2
