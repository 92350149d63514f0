"""``cellpose-sam`` and ``cellpose3``: output conversion, version/environment checks, real cellpose runs."""

from __future__ import annotations

import numpy as np
import pytest

from apgbench.methods import cellpose as cellpose_module
from apgbench.methods import get_method
from apgbench.methods.base import MethodUnavailableError
from apgbench.methods.cellpose import Cellpose3, CellposeSAM
from apgbench.methods.cellpose import cellpose_masks_to_labels as masks_to_labels

from ._helpers import LIBRARY_WARNINGS, assert_valid_labels, real_crop, spy_on

pytestmark = [pytest.mark.filterwarnings(w) for w in LIBRARY_WARNINGS]


def test_registered_with_paper_models():
    assert get_method("cellpose-sam") is CellposeSAM and get_method("cellpose3") is Cellpose3
    assert CellposeSAM.default_params["pretrained_model"] == "cpsam"  # explicit: 4.2 defaults to cpsam_v2
    assert CellposeSAM.default_params["diameter"] is None
    assert Cellpose3.default_params["model_type"] == "cyto3" and Cellpose3.default_params["diameter"] == 30.0


def test_masks_to_labels_crafted_outputs():
    masks = np.zeros((4, 5), np.uint16)
    masks[1:3, 1:3] = 7
    out = masks_to_labels(masks, (4, 5))
    assert out.dtype == np.uint32 and out[1, 1] == 7 and out.sum() == 28
    assert not masks_to_labels([], (4, 5)).any() and masks_to_labels(None, (4, 5)).shape == (4, 5)
    assert masks_to_labels(masks[None], (4, 5)).shape == (4, 5)
    many = np.arange(300 * 300, dtype=np.uint32).reshape(
        300, 300
    )  # 89999 objects, as cellpose returns uint32
    assert masks_to_labels(many, (300, 300)).max() == 89_999
    with pytest.raises(ValueError, match="shape"):
        masks_to_labels(masks, (5, 4))


def test_wrong_cellpose_major_names_the_environment(monkeypatch):
    monkeypatch.setattr(cellpose_module, "dist_version", lambda name: "4.2.1")
    monkeypatch.setattr(cellpose_module, "cellpose_major", lambda: 4)
    with pytest.raises(MethodUnavailableError, match=r"install_cellpose3_env\.sh"):
        Cellpose3()._check_version()
    assert not Cellpose3.meta.weights_status()[0]
    monkeypatch.setattr(cellpose_module, "dist_version", lambda name: "3.1.1")
    monkeypatch.setattr(cellpose_module, "cellpose_major", lambda: 3)
    with pytest.raises(MethodUnavailableError, match=r"needs cellpose 4\.x"):
        CellposeSAM()._check_version()
    assert not CellposeSAM.meta.weights_status()[0]


def test_weights_status_reads_cellpose_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("CELLPOSE_LOCAL_MODELS_PATH", str(tmp_path))
    monkeypatch.setattr(cellpose_module, "cellpose_major", lambda: 4)
    assert "not cached" in CellposeSAM.meta.weights_status()[1]
    (tmp_path / "cpsam").write_bytes(b"")
    assert CellposeSAM.meta.weights_status() == (True, f"ready (weights {tmp_path / 'cpsam'})")


def _require_cellpose(major: int):
    pytest.importorskip("cellpose", reason="cellpose is not installed")
    if (cellpose_module.cellpose_major() >= 4) != (major >= 4):
        pytest.skip(f"this environment's cellpose is not {major}.x")


def test_unknown_model_name_is_refused_not_replaced():
    _require_cellpose(4)
    with pytest.raises(ValueError, match="Unknown cellpose model 'cpsam_typo'"):
        CellposeSAM(pretrained_model="cpsam_typo").prepare("cpu")


@pytest.mark.heavy
@pytest.mark.parametrize("domain", ["nuclei-fluo", "nuclei-histo"])
def test_cellpose_sam_random_weights_real_library(monkeypatch, domain):
    _require_cellpose(4)
    from cellpose.models import CellposeModel

    calls = spy_on(monkeypatch, CellposeModel, "eval")
    image = real_crop(256 if domain == "nuclei-fluo" else 128, domain)
    with CellposeSAM(random_weights=True) as method:
        method.prepare("cpu")
        labels = method.segment(image)
        info = method.info()
    assert_valid_labels(labels, image.shape[:2])
    # Grey goes in as it is, RGB channels-last; the paper's settings reach eval; its masks come out unchanged.
    ((_, (given,), kwargs, (masks, _, _)),) = calls
    np.testing.assert_array_equal(given, image)
    assert given.dtype == np.float32
    assert kwargs["channel_axis"] == (None if image.ndim == 2 else -1) and kwargs["diameter"] is None
    assert (kwargs["flow_threshold"], kwargs["cellprob_threshold"]) == (0.4, 0.0)
    np.testing.assert_array_equal(labels, masks)
    assert info["precision"] == "bfloat16" and info["model"] == "cpsam"
    assert info["library"].startswith("cellpose==4")


@pytest.mark.heavy
def test_cellpose3_random_weights_real_library(monkeypatch):
    _require_cellpose(3)
    from cellpose.models import CellposeModel

    calls = spy_on(monkeypatch, CellposeModel, "eval")
    image = real_crop(256)
    with Cellpose3(random_weights=True) as method:
        method.prepare("cpu")
        labels = method.segment(image)
    assert_valid_labels(labels, image.shape)
    ((_, (given,), kwargs, (masks, _, _)),) = calls
    np.testing.assert_array_equal(given, image)
    assert kwargs["channels"] == [0, 0] and kwargs["diameter"] == 30.0
    np.testing.assert_array_equal(labels, masks)
    assert method.info()["library"].startswith("cellpose==3")


class _NormalisesInPlace:
    """Stands in for a cellpose model: ``eval`` normalises a float32 input in place, as cellpose 4 does
    (``transforms.normalize_img``: ``img_norm = img if img.dtype == "float32" else img.astype(...)``)."""

    def eval(self, x, **kwargs):
        x -= x.min()
        x /= max(float(x.max()), 1.0)
        grey = x.mean(axis=-1) if x.ndim == 3 else x
        return (grey > 0.5).astype(np.uint16), None, None


@pytest.mark.parametrize("cls", [CellposeSAM, Cellpose3])
@pytest.mark.parametrize("shape", [(32, 32), (32, 32, 3)])
def test_the_callers_image_is_left_as_it_was(cls, shape, rng):
    image = rng.uniform(0, 200, shape).astype(np.float32)
    before = image.copy()
    method = cls()
    method._model, method._prepared = _NormalisesInPlace(), True
    labels = method.segment(image)
    np.testing.assert_array_equal(image, before)
    assert labels.shape == shape[:2] and labels.any()
