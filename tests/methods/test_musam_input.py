"""What the µSAM image encoder receives: the paper's input conversion, bit for bit (issue 10, item 2).

The paper's code (micro-sam 4f6d45e2, util.py:605-623, ``_to_image``) left uint8 untouched and scaled every
other dtype by its global min and max with truncation; micro-sam 1.8 rescales every channel again. The
encoder's input is captured by a forward pre-hook on the real SAM ViT-B (random weights) and compared with
what ``SamPredictor.set_image`` makes of the paper's conversion. The hook stops the forward pass, so no
ViT-B compute is spent.
"""

from __future__ import annotations

import numpy as np
import pytest

from apgbench.methods.musam import MicroSamAPG

from ..conftest import iter_shared_samples, shared_data_dir

pytestmark = [
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]


class _Captured(Exception):
    pass


def paper_to_image(image: np.ndarray) -> np.ndarray:
    """The specification: micro-sam 4f6d45e2 util.py:605-623, stated as its numpy expressions."""
    if image.dtype != np.dtype("uint8"):
        image = image.astype("float32") - image.min()
        image = image / image.max()
        image = (image * 255).astype("uint8")
    return np.concatenate([image[..., None]] * 3, axis=-1) if image.ndim == 2 else image


@pytest.fixture(scope="module")
def encoder_input():
    """``capture(fn)``: run ``fn`` and return the tensor that reached the image encoder."""
    torch = pytest.importorskip("torch", reason="needs torch")
    pytest.importorskip("micro_sam", reason="needs the musam extra")
    if shared_data_dir() is None:
        pytest.skip("the real samples folder ../shared/data is absent")
    from segment_anything import SamPredictor, sam_model_registry

    torch.manual_seed(0)
    predictor = SamPredictor(sam_model_registry["vit_b"]().eval())
    seen = []

    def hook(module, args):
        seen.append(args[0].detach().clone())
        raise _Captured

    predictor.model.image_encoder.register_forward_pre_hook(hook)

    def capture(fn):
        seen.clear()
        with pytest.raises(_Captured):
            fn()
        return seen[0]

    return predictor, capture


def _inputs():
    samples = {stem: image for _, _, stem, image, _ in iter_shared_samples()}
    grey16 = samples["IXMtest_A02_s1"][:256, :300]
    return {
        "uint8 grey 10-255": samples["stardist_tests_img2d"],
        "uint16 grey": grey16,
        "float32 grey": grey16.astype(np.float32) / 7.3 - 11.0,
        "uint8 RGB 7-255": samples["patch2"][..., :3],
        "float64 RGB": samples["patch1"][..., :3].astype(np.float64) * 0.01,
    }


@pytest.mark.heavy
def test_encoder_receives_the_papers_conversion(encoder_input):
    from micro_sam import util

    predictor, capture = encoder_input
    method = MicroSamAPG()
    method.predictor, method.decoder = predictor, None
    differs = set()
    for name, image in _inputs().items():
        ours = capture(lambda image=image: method._maps(image))
        paper = capture(lambda image=image: predictor.set_image(paper_to_image(image)))
        assert ours.dtype == paper.dtype and ours.shape == paper.shape, name
        assert torch_equal(ours, paper), name
        native = capture(lambda image=image: util.precompute_image_embeddings(predictor, image, ndim=2))
        if not torch_equal(native, paper):
            differs.add(name)
    # micro-sam 1.8 on its own rescales uint8 and each RGB channel again: the encoder would see other values
    assert {"uint8 grey 10-255", "uint8 RGB 7-255"} <= differs


def torch_equal(a, b) -> bool:
    return bool((a == b).all())


def test_float_truncation_and_global_scale_of_the_spec():
    """The paper's rule truncates (127.5 -> 127) and scales all channels together."""
    assert paper_to_image(np.array([[0, 1, 2]], np.uint16))[0, :, 0].tolist() == [0, 127, 255]
    from apgbench.methods.images import to_rgb_uint8

    rng = np.random.default_rng(0)
    for image in (
        rng.integers(0, 4096, (20, 30)).astype(np.uint16),
        rng.normal(3.0, 2.0, (20, 30, 3)).astype(np.float32),
        rng.integers(5, 200, (20, 30)).astype(np.uint8),
    ):
        np.testing.assert_array_equal(to_rgb_uint8(image), paper_to_image(image))
