"""AIS smoothing against the real vigra (Debian's ``python3-vigra``, run by Debian's own python3).

The paper's AIS smoothed with ``vigra.filters.gaussianSmoothing`` (micro-sam instance_segmentation.py:1111,
torch-em segmentation.py:213-215). vigra is not on PyPI for current Pythons; Debian packages it for its
system interpreter, so the oracle runs there in a subprocess and exchanges arrays as .npy files.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from apgbench.apg import automatic_instance_segmentation
from apgbench.apg.core import vigra_gaussian
from apgbench.apg.testing import decoder_maps_from_labels

from ..conftest import iter_shared_samples, shared_data_dir

SYSTEM_PYTHON = Path("/usr/bin/python3")


def _vigra_available() -> bool:
    if not SYSTEM_PYTHON.is_file():
        return False
    probe = subprocess.run([str(SYSTEM_PYTHON), "-c", "import vigra"], check=False, capture_output=True)
    return probe.returncode == 0


pytestmark = pytest.mark.skipif(
    not _vigra_available(),
    reason="Debian's python3-vigra is absent (apt-get install python3-vigra provides the oracle)",
)

_SMOOTH = """
import sys, numpy, vigra
src, dst, sigma = sys.argv[1], sys.argv[2], float(sys.argv[3])
numpy.save(dst, vigra.filters.gaussianSmoothing(numpy.load(src), sigma))
"""


def vigra_smoothing(array: np.ndarray, sigma: float, tmp_path: Path) -> np.ndarray:
    src, dst = tmp_path / "in.npy", tmp_path / "out.npy"
    np.save(src, np.ascontiguousarray(array, dtype=np.float32))
    subprocess.run([str(SYSTEM_PYTHON), "-c", _SMOOTH, str(src), str(dst), str(sigma)], check=True)
    return np.load(dst)


@pytest.mark.parametrize("sigma", [0.7, 1.0, 1.6, 2.3])
def test_smoothing_equals_vigra(sigma, rng, tmp_path):
    array = rng.random((37, 53)).astype(np.float32)
    expected = vigra_smoothing(array, sigma, tmp_path)
    ours = vigra_gaussian(array, sigma)
    assert ours.dtype == expected.dtype == np.float32
    assert np.abs(ours - expected).max() <= 1e-6  # measured: 0.0


def test_ais_default_smoothing_is_vigras(tmp_path):
    """AIS on raw maps equals AIS on maps smoothed by vigra itself (sigma 1.0 and 1.6, then no smoothing)."""
    if shared_data_dir() is None:
        pytest.skip("the real samples folder ../shared/data is absent")
    labels = next(s[4] for s in iter_shared_samples() if s[2] == "stardist_tests_img2d")
    fg, dc, db = decoder_maps_from_labels(labels)
    rng = np.random.default_rng(1)  # noise makes the smoothing decide seeds and borders
    fg, dc, db = (np.clip(m + rng.normal(0, 0.15, m.shape), 0, 1).astype(np.float32) for m in (fg, dc, db))
    smoothed = (
        vigra_smoothing(fg, 1.0, tmp_path),
        vigra_smoothing(dc, 1.6, tmp_path),
        vigra_smoothing(db, 1.6, tmp_path),
    )
    ours = automatic_instance_segmentation(fg, dc, db)
    oracle = automatic_instance_segmentation(*smoothed, foreground_smoothing=0, distance_smoothing=0)
    assert ours.max() > 10
    np.testing.assert_array_equal(ours, oracle)
