"""The µSAM methods: metadata and weight errors (light), and the real SAM ViT-B path at random weights (heavy).

The heavy tests build SAM ViT-B with seeded random weights (no checkpoint). One image embedding is shared by
the comparisons of ``apg`` with micro-sam's ``AutomaticPromptGenerator``: what is compared is the path
prompts -> masks -> segmentation, which takes the embedding as given.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from apgbench.apg import APG_DEFAULTS
from apgbench.methods import MethodUnavailableError
from apgbench.methods.images import to_rgb_uint8
from apgbench.methods.musam import (
    MicroSamAIS,
    MicroSamAPG,
    MicroSamAPGBoundary,
    MicroSamAPGReference,
    microsam_model_dir,
    paper_input,
)

from ..conftest import iter_shared_samples, shared_data_dir

# micro-sam's import chain (torch.jit, optional sam3, napari bits) warns; those are not ours.
pytestmark = [
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]


def test_metadata_and_paper_defaults():
    assert [c.name for c in (MicroSamAIS, MicroSamAPG, MicroSamAPGBoundary, MicroSamAPGReference)] == [
        "ais",
        "apg",
        "apg-bd",
        "apg-ref",
    ]
    params = MicroSamAPG().params
    assert (
        params["foreground_threshold"],
        params["center_distance_threshold"],
        params["boundary_distance_threshold"],
        params["min_size"],
        params["nms_threshold"],
    ) == (0.5, 0.5, 0.5, 25, 0.9)
    assert MicroSamAPGBoundary.prompts == "boundary-maxima" and "prompts" not in MicroSamAPG.default_params
    assert set(APG_DEFAULTS) - {"prompts"} <= set(MicroSamAPG.default_params)
    assert (params["connectivity"], params["tile_shape"], params["halo"]) == (2, None, None)
    bd = MicroSamAPGBoundary().params
    assert (bd["min_distance"], bd["threshold_abs"]) == (5, 0.25)
    ais = MicroSamAIS().params
    assert (ais["foreground_smoothing"], ais["distance_smoothing"], ais["tile_shape"]) == (1.0, 1.6, None)
    with pytest.raises(ValueError, match="no parameter"):
        MicroSamAPG(nms=0.5)


def test_model_per_domain():
    method = MicroSamAPG()
    method.domain = "nuclei-histo"
    assert method.model_name() == "vit_b_histopathology"
    method.domain = "cells-labelfree"
    assert method.model_name() == "vit_b_lm"
    assert MicroSamAPG(model="vit_l_lm").model_name() == "vit_l_lm"


def test_cache_dir_and_status_without_torch(tmp_path, monkeypatch):
    monkeypatch.setenv("MICROSAM_CACHEDIR", str(tmp_path))
    assert microsam_model_dir() == tmp_path / "models"
    ok, message = MicroSamAPG.meta.weights_status()
    assert ok and str(tmp_path / "models") in message
    code = (
        "import sys, apgbench.methods.musam as m; m.MicroSamAPG.meta.weights_status(); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.heavy
def test_missing_weights_is_one_clear_error(tmp_path, monkeypatch):
    pytest.importorskip("micro_sam", reason="needs the musam extra")
    monkeypatch.setenv("MICROSAM_CACHEDIR", str(tmp_path))
    # A dead proxy makes the download fail at once, with or without internet.
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    with pytest.raises(MethodUnavailableError) as info:
        MicroSamAPG().prepare("cpu", "nuclei-fluo")
    message = str(info.value)
    assert str(tmp_path / "models" / "vit_b_lm") in message
    assert "https://uk1s3.embassy.ebi.ac.uk/" in message and "MICROSAM_CACHEDIR" in message
    assert message.count(". ") == 0  # one sentence
    with pytest.raises(MethodUnavailableError, match="does not exist"):
        MicroSamAPG(checkpoint=str(tmp_path / "none.pt")).prepare("cpu", "nuclei-fluo")


@pytest.fixture(scope="module")
def random_sam():
    """SAM ViT-B with seeded random weights and the embeddings of a real 256x256 image."""
    torch = pytest.importorskip("torch", reason="needs torch")
    pytest.importorskip("micro_sam", reason="needs the musam extra")
    if shared_data_dir() is None:
        pytest.skip("the real samples folder ../shared/data is absent")
    from micro_sam import util
    from segment_anything import SamPredictor, sam_model_registry

    torch.manual_seed(0)
    predictor = SamPredictor(sam_model_registry["vit_b"]().eval())
    # At random weights the mask logits stay within +-1, so every stability score (and every ranking
    # score) is 0 and NMS order would be a tie-break (torch's argsort is not stable). Scaling the last
    # hypernetwork layer scales the logits: same masks (sign unchanged), distinct scores.
    with torch.no_grad():
        layer = predictor.model.mask_decoder.output_hypernetworks_mlps[0].layers[-1]
        layer.weight.mul_(100)
        layer.bias.mul_(100)
    samples = {stem: (image, labels) for _, _, stem, image, labels in iter_shared_samples()}
    image = samples["stardist_tests_img2d"][0]
    with paper_input():
        embeddings = util.precompute_image_embeddings(predictor, to_rgb_uint8(image), ndim=2, verbose=False)
    return predictor, embeddings, samples


@pytest.mark.heavy
@pytest.mark.parametrize("stem", ["stardist_tests_img2d", "patch1"])
def test_apg_matches_micro_sam(random_sam, stem):
    from micro_sam import util
    from micro_sam.instance_segmentation import AutomaticPromptGenerator

    from apgbench.apg import automatic_prompt_generation, derive_prompts, ranking_scores
    from apgbench.apg.testing import decoder_maps_from_labels
    from apgbench.methods.musam import SamPointModel

    predictor, embeddings, samples = random_sam
    labels = samples[stem][1]
    maps = decoder_maps_from_labels(labels)
    util.set_precomputed(predictor, embeddings)
    reference = AutomaticPromptGenerator(predictor, None)
    reference.set_state(dict(zip(("foreground", "center_distances", "boundary_distances"), maps)))
    expected = reference.generate()
    # micro-sam 1.8 (apg-ref) labels 4-connected components: apg with connectivity=1 is the same, pixel for pixel.
    model = SamPointModel(predictor, embeddings, labels.shape)
    ours = automatic_prompt_generation(*maps, model, connectivity=1)
    assert ours.dtype == np.uint32 and ours.shape == labels.shape and ours.max() > 0
    sample = SamPointModel(predictor, embeddings, labels.shape).predict_points(derive_prompts(*maps)[:8])
    assert len(np.unique(ranking_scores(sample))) == 8  # the ranking is exercised, not a tie-break
    np.testing.assert_array_equal(ours, expected)


@pytest.mark.heavy
def test_methods_run_from_a_weight_file(random_sam, tmp_path, monkeypatch):
    """ais, apg and apg-ref through Segmenter.segment, with the model loaded from a (random) checkpoint file."""
    import torch
    from micro_sam import util
    from micro_sam.instance_segmentation import get_unetr

    predictor, embeddings, samples = random_sam
    unetr = get_unetr(predictor.model.image_encoder, None, device="cpu")
    decoder_state = {k: v for k, v in unetr.state_dict().items() if not k.startswith("encoder")}
    checkpoint = tmp_path / "vit_b_random.pt"
    torch.save({"model_state": predictor.model.state_dict(), "decoder_state": decoder_state}, checkpoint)
    image = samples["stardist_tests_img2d"][0]
    rgb = to_rgb_uint8(image)
    # Same weights, same image: reuse the fixture's embedding instead of 40 s of ViT-B on 2 cores.
    compute = util.precompute_image_embeddings
    monkeypatch.setattr(
        util,
        "precompute_image_embeddings",
        lambda p, im, **kw: embeddings if np.array_equal(im, rgb) else compute(p, im, **kw),
    )
    # Random decoder maps hover around 0.5: slightly stricter distance thresholds keep the prompts few.
    strict = {"center_distance_threshold": 0.46, "boundary_distance_threshold": 0.46}
    first = MicroSamAPG(checkpoint=str(checkpoint), connectivity=1, **strict)  # micro-sam 1.8's connectivity
    first.prepare("cpu", "nuclei-histo")  # the real loading path: get_predictor_and_decoder(checkpoint)
    assert first.info()["model"] == "vit_b_histopathology"
    results = {}
    for method in (first, MicroSamAPGReference(**strict), MicroSamAIS()):
        if method is not first:  # share the loaded model instead of reading 375 MB twice more
            method.predictor, method.decoder, method._prepared = first.predictor, first.decoder, True
        results[method.name] = method.segment(image)
    for labels in results.values():
        assert labels.shape == image.shape and labels.dtype == np.uint32
    assert results["ais"].max() > 0 and results["apg"].max() > 0
    np.testing.assert_array_equal(results["apg"], results["apg-ref"])


@pytest.mark.heavy
def test_tiled_point_model_routes_points_to_their_tile(rng):
    """Large images: each prompt goes to the tile whose core holds it, in that tile's halo-extended box."""
    pytest.importorskip("bioimage_cpp", reason="needs the musam extra")
    method = MicroSamAPG(tile_shape=[384, 384], halo=[64, 64], max_untiled=512)
    method.predictor = None  # routing needs no model
    shape = (900, 1000)
    tile_shape, halo = method._tiling(shape)
    assert (tile_shape, halo) == ((384, 384), (64, 64)) and method._tiling((512, 300)) == (None, None)
    assert MicroSamAPG()._tiling(shape) == (None, None)  # the paper's runs: no tiling by default
    model = method.point_model({}, shape, (tile_shape, halo))
    assert len(model.tiles) == 9
    for row, col in rng.integers(0, shape, size=(200, 2)):
        tile = model.tiles[model.tile_of((row, col))]
        assert tile[0].start <= row < tile[0].stop and tile[1].start <= col < tile[1].stop
        # the point lies in the tile's core, so at least `halo` inside the outer box unless at the border
        core_row = row // 384 * 384
        assert tile[0].start == max(core_row - 64, 0)
