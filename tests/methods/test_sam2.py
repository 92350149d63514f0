"""``sam2-amg``: install detection, Hydra isolation, and the real sam2 path with random weights."""

from __future__ import annotations

import numpy as np
import pytest

from apgbench.methods import get_method
from apgbench.methods import sam2 as sam2_module
from apgbench.methods.images import to_rgb_uint8
from apgbench.methods.sam2 import SAM2_MODELS, Sam2AMG, sam2_install

from ._helpers import LIBRARY_WARNINGS, assert_valid_labels, real_crop, spy_on

pytestmark = [pytest.mark.filterwarnings(w) for w in LIBRARY_WARNINGS]


def test_registered_with_paper_default():
    assert get_method("sam2-amg") is Sam2AMG
    assert Sam2AMG.default_params["model"] == "hiera_b+" and "hiera_b+" in SAM2_MODELS


@pytest.mark.parametrize(
    ("versions", "expected"),
    [
        ({"SAM-2": "1.0", "sam2": None}, "official SAM-2 1.0"),
        ({"SAM-2": None, "sam2": "1.1.0"}, "PyPI sam2 1.1.0"),
        ({"SAM-2": None, "sam2": None}, None),
    ],
)
def test_install_kind(monkeypatch, versions, expected):
    monkeypatch.setattr(sam2_module, "dist_version", versions.get)
    result = sam2_install()
    assert result == expected or (expected and result.startswith(expected))


def test_weights_status_names_install_and_file(monkeypatch, tmp_path):
    monkeypatch.setenv("APGBENCH_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setattr(sam2_module, "dist_version", {"sam2": "1.1.0"}.get)
    ok, message = Sam2AMG.meta.weights_status()
    assert ok and "PyPI sam2 1.1.0" in message and "sam2.1_hiera_base_plus.pt" in message


def test_hydra_state_is_restored():
    pytest.importorskip("sam2", reason="sam2 is not installed")
    from hydra import compose, initialize
    from hydra.core.global_hydra import GlobalHydra

    from apgbench.methods.sam2 import _sam2_hydra

    GlobalHydra.instance().clear()
    with _sam2_hydra():
        assert GlobalHydra.instance().is_initialized()
        assert compose(config_name="configs/sam2.1/sam2.1_hiera_t.yaml").model is not None
    assert not GlobalHydra.instance().is_initialized()

    # Another application's Hydra config survives a SAM 2 build untouched.
    with initialize(version_base=None, config_path=None):
        before = repr(GlobalHydra.instance().config_loader().get_sources())
        with _sam2_hydra():
            pass
        assert GlobalHydra.instance().is_initialized()
        assert repr(GlobalHydra.instance().config_loader().get_sources()) == before
    GlobalHydra.instance().clear()


@pytest.mark.heavy
def test_sam2_random_weights_real_library(monkeypatch):
    """The real generator gets uint8 RGB and the wrapper's settings; its records become amg's labels."""
    pytest.importorskip("sam2", reason="sam2 is not installed")
    pytest.importorskip("micro_sam", reason="needs the musam extra (the paper's conversion is the oracle)")
    from hydra.core.global_hydra import GlobalHydra
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

    from .test_amg_paper import paper_mask_data_to_segmentation

    calls = spy_on(monkeypatch, SAM2AutomaticMaskGenerator, "generate")
    GlobalHydra.instance().clear()
    image = real_crop(256)
    # Few prompts, no quality filter and no box NMS keep CPU time low and let many random masks (large,
    # overlapping) reach the painting, where the order decides which mask owns a pixel.
    params = {
        "points_per_side": 4,
        "pred_iou_thresh": 0.0,
        "stability_score_thresh": 0.0,
        "box_nms_thresh": 1.0,
    }
    with Sam2AMG(random_weights=True, **params) as method:
        method.prepare("cpu")
        labels = method.segment(image)
        info = method.info()
    assert_valid_labels(labels, image.shape)
    ((generator, (rgb,), _, records),) = calls
    np.testing.assert_array_equal(rgb, to_rgb_uint8(image))
    assert (generator.pred_iou_thresh, generator.stability_score_thresh, generator.box_nms_thresh) == (
        0,
        0,
        1,
    )
    assert len(records) > 1
    np.testing.assert_array_equal(labels, paper_mask_data_to_segmentation(records))
    assert not GlobalHydra.instance().is_initialized()
    assert info["library"] == sam2_install() and info["model"] == "sam2.1_hiera_b+"
