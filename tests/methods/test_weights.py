"""Weights files, downloads, provenance and seeded random weights (methods/weights.py)."""

from __future__ import annotations

import numpy as np
import pytest

from apgbench.methods.base import MethodUnavailableError
from apgbench.methods.weights import (
    RANDOM_WEIGHTS,
    owning_distribution,
    resolve_checkpoint,
    seeded_torch,
    sha256_file,
    weights_info,
    weights_root,
)


def test_weights_root_env(monkeypatch, tmp_path):
    monkeypatch.setenv("APGBENCH_WEIGHTS_DIR", str(tmp_path))
    assert weights_root() == tmp_path


def test_resolve_checkpoint_explicit_and_default(tmp_path):
    default = tmp_path / "w.pth"
    with pytest.raises(MethodUnavailableError, match="does not exist"):
        resolve_checkpoint(tmp_path / "nope.pth", default, "http://127.0.0.1:9/w.pth", "amg")
    default.write_bytes(b"x")
    assert resolve_checkpoint(None, default, "http://127.0.0.1:9/w.pth", "amg") == default


def test_resolve_checkpoint_failed_download_names_file_and_url(tmp_path):
    pytest.importorskip("torch", reason="downloads go through torch.hub")
    default = tmp_path / "sub" / "w.pth"
    with pytest.raises(MethodUnavailableError) as err:
        resolve_checkpoint(None, default, "http://127.0.0.1:9/w.pth", "amg")
    assert str(default) in str(err.value) and "http://127.0.0.1:9/w.pth" in str(err.value)
    assert not default.exists() and not default.with_name("w.pth.part").exists()


def test_owning_distribution_of_segment_anything():
    pytest.importorskip("segment_anything", reason="segment-anything is not installed")
    owner = owning_distribution("segment_anything", "predictor.py")
    assert owner is not None and owner.split("==")[0] in {
        "segment-anything",
        "segment-anything-py",
        "segment_anything",
    }
    assert owning_distribution("not_a_module_here", "x.py") is None


def test_weights_info_names_file_hash_or_random(tmp_path):
    path = tmp_path / "w.pt"
    path.write_bytes(b"weights")
    assert weights_info(path) == {"weights": str(path), "weights_sha256": sha256_file(path)}
    assert weights_info(None, random=True) == {"weights": RANDOM_WEIGHTS, "weights_sha256": None}
    assert weights_info(None) == {"weights": None, "weights_sha256": None}


def test_seeded_torch_is_reproducible_and_leaves_the_callers_stream_alone():
    torch = pytest.importorskip("torch", reason="seeded random weights are a torch feature")
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    with seeded_torch():
        first = torch.rand(4)
    with seeded_torch():
        second = torch.rand(4)
    assert torch.equal(first, second)
    assert torch.equal(torch.rand(3), expected_next)  # the caller's generator continues where it was
    torch.manual_seed(0)
    assert np.allclose(torch.rand(4).numpy(), first.numpy())  # seed 0, as the wrappers always used
