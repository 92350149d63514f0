"""Helpers shared by the method-wrapper tests (not collected: no ``test_`` prefix)."""

from __future__ import annotations

import json

import numpy as np

from ..conftest import shared_data_dir

# Third-party warnings raised while importing or running the real libraries with random weights.
LIBRARY_WARNINGS = [
    "ignore:`torch.jit.script` is deprecated:FutureWarning",
    "ignore:`torch.jit.script_method` is deprecated:FutureWarning",
    "ignore::UserWarning:sam2",
    "ignore::UserWarning:cellpose",
    "ignore::UserWarning:torch",
    "ignore::FutureWarning:timm",
]


def real_crop(size: int = 256, domain: str = "nuclei-fluo") -> np.ndarray:
    """A ``size`` x ``size`` crop of a real sample image (uint16 nuclei by default)."""
    import pytest
    import tifffile

    root = shared_data_dir()
    if root is None:
        pytest.skip("the real samples folder ../shared/data is absent (set APGBENCH_SHARED_DATA to use it)")
    if domain == "nuclei-histo":
        import imageio.v3 as iio

        return iio.imread(root / "nuclei-histo" / "consep_patches" / "patch1.png")[:size, :size, :3]
    return tifffile.imread(root / "nuclei-fluo" / "dsb2018" / "stardist_data_img2d.tif")[:size, :size]


def pixel_masks(shape: tuple[int, int], count: int) -> list[np.ndarray]:
    """``count`` full-size single-pixel masks (pixel k in raster order) as views of one buffer.

    Each mask is a strided view of a buffer holding one True, so tens of thousands of full-size masks
    cost no memory: the >65535-object tests need them.
    """
    size = shape[0] * shape[1]
    buffer = np.zeros(2 * size, dtype=bool)
    buffer[size] = True
    return [buffer[size - k : 2 * size - k].reshape(shape) for k in range(count)]


def assert_valid_labels(labels: np.ndarray, shape: tuple[int, int]) -> int:
    """The contract of every method's output (uint32, the image's ``(H, W)``); returns the object count.

    Any non-negative id is allowed (0 is background, objects need not be consecutive), so the contract
    says nothing about the values: each test asserts what its wrapper decides about them.
    """
    assert labels.dtype == np.uint32
    assert labels.shape == tuple(shape)
    return int(np.count_nonzero(np.unique(labels)))


def spy_on(monkeypatch, owner: type, name: str) -> list[tuple]:
    """Wrap the method ``owner.name`` of a real library: the list fills with ``(self, args, kwargs, result)``.

    The tests see what the library received from the wrapper and what it returned, so they can compute
    the wrapper's expected output from the library's real (random-weight) output. Array arguments are
    copied before the call: libraries normalise their input in place (cellpose does).
    """
    calls: list[tuple] = []
    original = getattr(owner, name)

    def spy(self, *args, **kwargs):
        given = tuple(a.copy() if isinstance(a, np.ndarray) else a for a in args)
        result = original(self, *args, **kwargs)
        calls.append((self, given, kwargs, result))
        return result

    monkeypatch.setattr(owner, name, spy)
    return calls


def fake_distribution(site, name, version, module="", probe="", content=b"", direct_url=None):
    """An installed distribution in folder ``site`` (put it on ``sys.path``), as pip leaves it.

    Its RECORD claims ``module/probe`` with the sha256 of ``content``; ``direct_url`` (a dict) becomes
    its PEP 610 ``direct_url.json``, which pip writes for installs from a URL or a git repository.
    """
    import base64
    import hashlib

    digest = base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=").decode()
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "RECORD").write_text(f"{module}/{probe},sha256={digest},{len(content)}\n" if module else "")
    if direct_url is not None:
        (info / "direct_url.json").write_text(json.dumps(direct_url))
    return info
