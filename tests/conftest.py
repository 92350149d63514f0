"""Shared fixtures: isolated results/data roots and the real samples in ../shared/data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent


def shared_data_dir() -> Path | None:
    """The folder of real annotated samples (``$APGBENCH_SHARED_DATA`` or ``<repo>/../shared/data``)."""
    candidate = Path(os.environ.get("APGBENCH_SHARED_DATA", REPO.parent / "shared" / "data"))
    return candidate if (candidate / "MANIFEST.md").exists() else None


def iter_shared_samples():
    """Yield (domain, source, stem, image, labels) for every real sample with its label image."""
    import imageio.v3 as iio
    import tifffile

    root = shared_data_dir()
    for label_path in sorted(root.glob("*/*/*_label.tif")):
        stem = label_path.name[: -len("_label.tif")]
        image_path = next(p for p in label_path.parent.glob(f"{stem}.*") if p != label_path)
        image = tifffile.imread(image_path) if image_path.suffix == ".tif" else iio.imread(image_path)
        yield label_path.parent.parent.name, label_path.parent.name, stem, image, tifffile.imread(label_path)


@pytest.fixture
def shared_data() -> Path:
    root = shared_data_dir()
    if root is None:
        pytest.skip("the real samples folder ../shared/data is absent (set APGBENCH_SHARED_DATA to use it)")
    return root


@pytest.fixture
def roots(tmp_path, monkeypatch):
    """Fresh results and data roots, also set in the environment the CLI reads."""
    results, data = tmp_path / "results", tmp_path / "datasets"
    monkeypatch.setenv("APGBENCH_RESULTS_DIR", str(results))
    monkeypatch.setenv("APGBENCH_DATA_DIR", str(data))
    return results, data


@pytest.fixture
def register_methods(monkeypatch):
    """Register test-only methods for one test: ``register_methods(Cls, ...)``.

    The registry is swapped for a copy holding the built-ins (and any plugins), so whatever the test
    registers leaves with it and no test method shows up in another test's ``available_methods()``.
    """
    import copy

    import apgbench.methods as methods

    methods.available_methods()  # built-ins and entry points first: they stay loaded for later tests
    # deepcopy copies the name -> class table (a dict or a registry object), never the classes themselves.
    monkeypatch.setattr(methods, "_REGISTRY", copy.deepcopy(methods._REGISTRY))

    def register(*classes):
        for cls in classes:
            methods.register_method(cls)
        return classes

    return register


@pytest.fixture
def rng():
    return np.random.default_rng(0)
