"""``stardist``: model per domain, channel handling, csbdeep normalisation, weights cache and offline error,
and real StarDist2D runs (versatile architecture, random weights) on real images."""

from __future__ import annotations

import json

import numpy as np
import pytest

from apgbench.methods import get_method
from apgbench.methods.base import MethodUnavailableError
from apgbench.methods.stardist import (
    MODEL_URLS,
    StarDist,
    keras_model_folder,
    labels_to_uint32,
    stardist_input,
    stardist_model_for,
)

from ._helpers import LIBRARY_WARNINGS, assert_valid_labels, real_crop

pytestmark = [pytest.mark.filterwarnings(w) for w in LIBRARY_WARNINGS]


def test_registered_with_a_model_per_domain():
    assert get_method("stardist") is StarDist and StarDist.extra == "stardist"
    assert stardist_model_for("nuclei-histo") == "2D_versatile_he"
    assert {stardist_model_for(d) for d in ("nuclei-fluo", "cells-fluo", "cells-labelfree")} == {
        "2D_versatile_fluo"
    }
    method = StarDist()
    assert method.model_name("nuclei-histo") == "2D_versatile_he"
    assert StarDist(model="2D_paper_dsb2018").model_name("nuclei-histo") == "2D_paper_dsb2018"
    assert StarDist(model_dir="/x/my_model").model_name("nuclei-fluo") == "my_model"
    p = StarDist.default_params
    assert (p["pmin"], p["pmax"], p["normalize_jointly"], p["n_tiles"]) == (1.0, 99.8, False, None)


def test_input_channels_for_grey_and_rgb_models():
    grey = np.arange(12, dtype=np.uint16).reshape(3, 4)
    two = np.stack([grey, grey + 100], axis=-1)  # (whole-cell, nucleus)
    rgb = np.stack([grey, grey + 3, grey + 6], axis=-1)
    assert stardist_input(grey, 1).dtype == np.float32 and stardist_input(grey, 1).shape == (3, 4)
    np.testing.assert_array_equal(stardist_input(two, 1), grey + 100)  # the nucleus channel
    np.testing.assert_array_equal(stardist_input(rgb, 1), grey + 3)  # the channel mean
    he = stardist_input(grey, 3)
    assert he.shape == (3, 4, 3) and all(np.array_equal(he[..., c], grey) for c in range(3))
    padded = stardist_input(two, 3)
    np.testing.assert_array_equal(padded[..., :2], two) and not padded[..., 2].any()
    np.testing.assert_array_equal(stardist_input(rgb, 3), rgb)
    with pytest.raises(ValueError, match="2 input channels"):
        stardist_input(grey, 2)


def test_labels_to_uint32_keeps_ids_beyond_uint16():
    labels = np.arange(300 * 300, dtype=np.int32).reshape(300, 300)
    out = labels_to_uint32(labels, (300, 300))
    assert out.dtype == np.uint32 and out.max() == 89_999
    with pytest.raises(ValueError, match="shape"):
        labels_to_uint32(labels, (300, 301))
    with pytest.raises(ValueError, match="negative"):
        labels_to_uint32(-labels, (300, 300))


def test_weights_status_reads_keras_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    folder = keras_model_folder("2D_versatile_fluo")
    assert folder == tmp_path / "models" / "StarDist2D" / "2D_versatile_fluo"
    assert "not cached" in StarDist.meta.weights_status()[1]
    folder.mkdir(parents=True)
    (folder / "2D_versatile_fluo.zip").write_bytes(b"")
    assert StarDist.meta.weights_status() == (True, f"ready (weights in {folder})")


def _require_stardist():
    pytest.importorskip("tensorflow", reason="tensorflow is not installed (extra 'stardist')")
    pytest.importorskip("stardist", reason="stardist is not installed (extra 'stardist')")


def test_no_domain_and_no_model_is_refused():
    _require_stardist()
    with pytest.raises(ValueError, match="--domain"):
        StarDist().prepare("cpu")


def test_offline_error_names_url_folder_and_local_option(monkeypatch, tmp_path):
    _require_stardist()
    from csbdeep.models import pretrained

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: no network")

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(pretrained, "get_file", offline)
    with pytest.raises(MethodUnavailableError) as info:
        StarDist().prepare("cpu", "nuclei-histo")
    message = str(info.value)
    assert MODEL_URLS["2D_versatile_he"] in message and str(keras_model_folder("2D_versatile_he")) in message
    assert "model_dir=" in message and message.count(".") >= 1 and "\n" not in message
    with pytest.raises(MethodUnavailableError, match=r"config\.json"):
        StarDist(model_dir=str(tmp_path)).prepare("cpu", "nuclei-fluo")


@pytest.mark.heavy
def test_random_weights_fluo_matches_the_notebook_pipeline_on_real_image():
    _require_stardist()
    from csbdeep.utils import normalize

    image = real_crop(256)  # uint16 DSB nuclei
    with StarDist(random_weights=True) as method:
        method.prepare("cpu", "nuclei-fluo")
        labels = method.segment(image)
        model = method._model
        expected, _ = model.predict_instances(normalize(image, 1, 99.8, axis=(0, 1)), verbose=False)
        two_channel = method.segment(np.stack([np.zeros_like(image), image], axis=-1))
        tiled = StarDist(random_weights=True, n_tiles=[2, 2])
        tiled.prepare("cpu", "nuclei-fluo")
        tiled_labels = tiled.segment(image)
        info = method.info()
    assert_valid_labels(labels, image.shape)
    assert model.config.n_channel_in == 1 and labels.max() > 0
    np.testing.assert_array_equal(labels, expected.astype(np.uint32))
    np.testing.assert_array_equal(two_channel, labels)  # the nucleus channel is what the model saw
    assert_valid_labels(tiled_labels, image.shape)
    assert info["model"] == "2D_versatile_fluo" and info["library"].startswith("stardist==")
    assert info["thresholds"] == {"prob": 0.5, "nms": 0.4}


@pytest.mark.heavy
def test_random_weights_he_model_normalises_rgb_per_channel():
    _require_stardist()
    from csbdeep.utils import normalize

    image = real_crop(128, "nuclei-histo")  # uint8 RGB H&E
    with StarDist(random_weights=True) as method:
        method.prepare("cpu", "nuclei-histo")
        labels = method.segment(image)
        model = method._model
        x = image.astype(np.float32)
        per_channel, _ = model.predict_instances(normalize(x, 1, 99.8, axis=(0, 1)), verbose=False)
        joint, _ = model.predict_instances(normalize(x, 1, 99.8), verbose=False)
        grey = method.segment(image[..., 0])
        grey_expected, _ = model.predict_instances(
            normalize(np.repeat(x[..., :1], 3, axis=-1), 1, 99.8, axis=(0, 1)), verbose=False
        )
    assert model.config.n_channel_in == 3 and method.info()["model"] == "2D_versatile_he"
    assert_valid_labels(labels, image.shape[:2])
    np.testing.assert_array_equal(labels, per_channel.astype(np.uint32))
    assert not np.array_equal(labels, joint)  # the per-channel choice is visible in the output
    np.testing.assert_array_equal(grey, grey_expected.astype(np.uint32))


@pytest.mark.heavy
def test_model_dir_loads_a_local_model_folder(tmp_path):
    _require_stardist()
    image = real_crop(128)
    with StarDist(random_weights=True) as source:
        source.prepare("cpu", "nuclei-fluo")
        reference = source.segment(image)
        folder = tmp_path / "2D_versatile_fluo"
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps(vars(source._model.config), default=list))
        source._model.keras_model.save_weights(str(folder / "weights_best.h5"))  # the released format
        (folder / "thresholds.json").write_text(json.dumps({"prob": 0.5, "nms": 0.4}))
    with StarDist(model_dir=str(folder)) as local:
        local.prepare("cpu", "nuclei-fluo")
        np.testing.assert_array_equal(local.segment(image), reference)
        assert local.info()["weights"] == str(folder)


@pytest.mark.heavy
def test_run_and_report_show_stardist_beside_the_paper_without_a_paper_value(tmp_path):
    _require_stardist()
    import pandas as pd

    from apgbench.report import build_report
    from apgbench.runner import run_benchmark

    for dataset in ("synthetic-nuclei", "synthetic-histo"):
        summary = run_benchmark(
            dataset,
            "stardist",
            params={"random_weights": True},
            results_root=tmp_path / "r",
            data_root=tmp_path / "d",
            limit=1,
            show_progress=False,
            fail_fast=True,
        )
        assert summary.n_failed == 0 and summary.mean_msa is not None
    result = build_report(tmp_path / "r", tmp_path / "report", formats=("csv",), n_boot=10)
    (label,) = result.table.columns  # non-default params (random_weights) label it stardist[p-...]
    assert label.startswith("stardist[") and result.table[label].notna().sum() == 2
    comparison = pd.read_csv(tmp_path / "report" / "paper_comparison.csv")
    assert comparison.empty  # synthetic data and a method beyond the paper: nothing to compare
