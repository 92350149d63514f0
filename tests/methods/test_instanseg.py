"""``instanseg``: model and output per domain, channel handling, weights cache and offline error, and real
InstanSeg runs (the library's architecture with random weights, scripted as released) on real images."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from apgbench.files import sha256_file
from apgbench.methods import get_method
from apgbench.methods.base import MethodUnavailableError
from apgbench.methods.instanseg import (
    MODELS,
    InstanSeg,
    instances_to_labels,
    instanseg_input,
    instanseg_model_for,
    instanseg_weights_path,
    model_index,
    target_for,
)

from ._helpers import LIBRARY_WARNINGS, assert_valid_labels, real_crop

# InstanSeg scripts and loads TorchScript (deprecated in torch 2.14) and warns from its own modules.
INSTANSEG_WARNINGS = ["ignore:`torch.jit:FutureWarning", "ignore::UserWarning:instanseg"]
pytestmark = [pytest.mark.filterwarnings(w) for w in LIBRARY_WARNINGS + INSTANSEG_WARNINGS]


def test_registered_with_a_model_and_output_per_domain():
    assert get_method("instanseg") is InstanSeg and InstanSeg.extra == "instanseg"
    assert instanseg_model_for("nuclei-fluo") == "single_channel_nuclei"
    assert instanseg_model_for("cells-fluo") == "fluorescence_nuclei_and_cells"
    assert instanseg_model_for("cells-labelfree") == "fluorescence_nuclei_and_cells"
    assert instanseg_model_for("nuclei-histo") == "brightfield_nuclei"
    assert [target_for(d) for d in ("nuclei-fluo", "nuclei-histo", "cells-fluo", "cells-labelfree")] == [
        "nuclei",
        "nuclei",
        "cells",
        "cells",
    ]
    assert InstanSeg(model="brightfield_nuclei").model_name("cells-fluo") == "brightfield_nuclei"
    p = InstanSeg.default_params
    assert (p["pixel_size"], p["processing"], p["tile_size"], p["batch_size"]) == (None, "auto", 512, 1)


def test_listing_imports_neither_torch_nor_tensorflow():
    code = (
        "import sys, apgbench.methods as m\n"
        "for n in ('instanseg', 'stardist'): m.method_status(m.get_method(n))\n"
        "heavy = {'torch', 'tensorflow', 'keras', 'instanseg', 'stardist', 'csbdeep'}\n"
        "print(sorted(heavy & {k.split('.')[0] for k in sys.modules}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_reports_have_no_paper_value_for_methods_beyond_the_paper():
    from apgbench.report.paper import paper_table, paper_value

    assert not np.isnan(paper_value("dsb", "ais"))
    assert np.isnan(paper_value("dsb", "instanseg")) and np.isnan(paper_value("dsb", "stardist"))
    table = paper_table([("nuclei-fluo", "dsb")], ["ais", "instanseg", "stardist"])
    assert table.loc[("nuclei-fluo", "dsb")].isna().tolist() == [False, True, True]


def test_input_channels_first_per_model_kind():
    grey = np.arange(12, dtype=np.uint16).reshape(3, 4)
    two = np.stack([grey, grey + 100], axis=-1)  # (whole-cell, nucleus)
    rgb = np.stack([grey, grey + 3, grey + 6], axis=-1)
    single = instanseg_input(grey, 1)
    assert single.dtype == np.float32 and single.shape == (1, 3, 4)
    np.testing.assert_array_equal(instanseg_input(two, 1)[0], grey + 100)  # nucleus channel
    np.testing.assert_array_equal(instanseg_input(rgb, 1)[0], grey + 3)  # channel mean
    bright = instanseg_input(grey, 3)
    assert bright.shape == (3, 3, 4) and all(np.array_equal(c, grey) for c in bright)
    padded = instanseg_input(two, 3)
    assert padded.shape == (3, 3, 4) and not padded[2].any()
    np.testing.assert_array_equal(padded[1], grey + 100)
    np.testing.assert_array_equal(instanseg_input(rgb, 3), np.moveaxis(rgb, -1, 0))
    invariant = instanseg_input(two, None)  # channel invariant: every channel, channels first
    assert invariant.shape == (2, 3, 4) and invariant.flags.c_contiguous
    assert instanseg_input(grey, None).shape == (1, 3, 4)


def test_instances_to_labels_from_tensor_like_output():
    labels = np.arange(300 * 300, dtype=np.float32).reshape(1, 1, 300, 300)  # ids beyond uint16
    out = instances_to_labels(labels, (300, 300))
    assert out.dtype == np.uint32 and out.max() == 89_999 and out.shape == (300, 300)
    with pytest.raises(ValueError, match="shape"):
        instances_to_labels(labels, (300, 299))
    with pytest.raises(ValueError, match="non-negative integers"):
        instances_to_labels(labels + 0.5, (300, 300))
    torch = pytest.importorskip("torch")
    assert instances_to_labels(torch.from_numpy(labels), (300, 300)).max() == 89_999


def _require_instanseg():
    pytest.importorskip("instanseg", reason="instanseg-torch is not installed (extra 'instanseg')")


def test_weights_path_follows_the_library_cache(monkeypatch, tmp_path):
    _require_instanseg()
    index = model_index()
    assert set(MODELS.values()) <= set(index)
    monkeypatch.setenv("INSTANSEG_BIOIMAGEIO_PATH", str(tmp_path))
    entry = index["fluorescence_nuclei_and_cells"]
    path = instanseg_weights_path("fluorescence_nuclei_and_cells")
    assert path == tmp_path / "fluorescence_nuclei_and_cells" / entry["version"] / "instanseg.pt"
    assert "not cached" in InstanSeg.meta.weights_status()[1]
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")
    assert InstanSeg.meta.weights_status() == (True, f"ready (weights {path})")


def test_no_domain_and_no_model_is_refused():
    _require_instanseg()
    with pytest.raises(ValueError, match="--domain"):
        InstanSeg().prepare("cpu")
    with pytest.raises(ValueError, match="processing must be"):
        InstanSeg(processing="huge").prepare("cpu", "nuclei-fluo")
    with pytest.raises(MethodUnavailableError, match="does not exist"):
        InstanSeg(checkpoint="/nonexistent/instanseg.pt").prepare("cpu", "nuclei-fluo")


def _offline(monkeypatch):
    import requests

    def refuse(*args, **kwargs):
        raise requests.ConnectionError("no network")

    monkeypatch.setattr(requests, "get", refuse)


def test_offline_error_names_url_folder_and_local_option(monkeypatch, tmp_path):
    _require_instanseg()
    _offline(monkeypatch)
    monkeypatch.setenv("INSTANSEG_BIOIMAGEIO_PATH", str(tmp_path))
    with pytest.raises(MethodUnavailableError) as info:
        InstanSeg().prepare("cpu", "nuclei-histo")
    message = str(info.value)
    assert model_index()["brightfield_nuclei"]["url"] in message and "ConnectionError" in message
    assert str(instanseg_weights_path("brightfield_nuclei").parent) in message and "checkpoint=" in message
    with pytest.raises(ValueError, match="Unknown InstanSeg model 'nope'"):
        InstanSeg(model="nope").prepare("cpu", "nuclei-histo")


class _Spy:
    """Records which of the library's array entry points the wrapper calls, with what, and calls through."""

    def __init__(self, runner):
        self.calls = []
        for name in ("eval_small_image", "eval_medium_image"):
            setattr(runner, name, self._wrap(name, getattr(runner, name)))

    def _wrap(self, name, function):
        def call(image, **kwargs):
            self.calls.append((name, np.asarray(image).shape, kwargs))
            return function(image, **kwargs)

        return call


@pytest.fixture(scope="module")
def brightfield_cache(tmp_path_factory):
    """The brightfield model's random-weights TorchScript file, saved where the library's cache keeps it."""
    _require_instanseg()
    import torch

    from apgbench.methods.instanseg import random_instanseg

    root = tmp_path_factory.mktemp("instanseg_models")
    version = model_index()["brightfield_nuclei"]["version"]
    target = root / "brightfield_nuclei" / version / "instanseg.pt"
    target.parent.mkdir(parents=True)
    torch.jit.save(random_instanseg("brightfield_nuclei"), str(target))
    return root, target


@pytest.mark.heavy
def test_cached_brightfield_model_runs_on_real_he_and_grey(monkeypatch, brightfield_cache):
    root, weights = brightfield_cache
    _offline(monkeypatch)  # the cached file is used: no download is attempted
    monkeypatch.setenv("INSTANSEG_BIOIMAGEIO_PATH", str(root))
    image = real_crop(128, "nuclei-histo")
    with InstanSeg() as method:
        method.prepare("cpu", "nuclei-histo")
        spy = _Spy(method._model)
        labels = method.segment(image)
        grey = method.segment(image[..., 0])
        info = method.info()
    assert_valid_labels(labels, image.shape[:2])
    assert_valid_labels(grey, image.shape[:2])
    (name, shape, kwargs), (_, grey_shape, _) = spy.calls
    assert name == "eval_small_image" and shape == (3, 128, 128) and grey_shape == (3, 128, 128)
    assert kwargs["target"] == "nuclei" and kwargs["pixel_size"] is None
    assert info["model"] == "brightfield_nuclei" and info["weights"] == str(weights)
    assert info["weights_sha256"] == sha256_file(weights) and info["library"].startswith("instanseg-torch==")


@pytest.mark.heavy
def test_large_images_are_tiled_as_the_library_does(monkeypatch, brightfield_cache):
    _, weights = brightfield_cache
    image = real_crop(256, "nuclei-histo")
    with InstanSeg(checkpoint=str(weights), tile_size=224) as method:
        method.prepare("cpu", "nuclei-histo")
        method._model.small_image_threshold = (
            3 * 200 * 200
        )  # the 3 x 256 x 256 input is now "medium"; tiles > 200 (its overlap)
        spy = _Spy(method._model)
        labels = method.segment(image)
    assert_valid_labels(labels, image.shape[:2])
    ((name, shape, kwargs),) = spy.calls
    assert name == "eval_medium_image" and shape == (3, 256, 256)
    assert kwargs["tile_size"] == 224 and kwargs["batch_size"] == 1 and kwargs["target"] == "nuclei"


@pytest.mark.heavy
def test_random_weights_fluorescence_model_gets_every_channel_and_the_cell_output():
    _require_instanseg()
    image = real_crop(128)
    two = np.stack([image, image[::-1]], axis=-1)  # a (whole-cell, nucleus) image from real data
    with InstanSeg(random_weights=True) as method:
        method.prepare("cpu", "cells-fluo")
        spy = _Spy(method._model)
        labels = method.segment(two)
        info = method.info()
        both = method._model.instanseg.cells_and_nuclei
    assert_valid_labels(labels, image.shape)
    ((_, shape, kwargs),) = spy.calls
    assert shape == (2, 128, 128) and kwargs["target"] == "cells"
    assert both  # the two-output architecture answered "cells"
    assert info["model"] == "fluorescence_nuclei_and_cells" and info["weights"] == "random (testing only)"
