"""Fixtures of the APG tests: the mSA function (apgbench.metrics, or elf's until that exists)."""

from __future__ import annotations

import pytest


def _msa_function():
    try:
        from apgbench.metrics import mean_segmentation_accuracy
    except ImportError:
        elf = pytest.importorskip("elf.evaluation", reason="apgbench.metrics or python-elf is needed for mSA")
        mean_segmentation_accuracy = elf.mean_segmentation_accuracy
    return lambda pred, true: float(mean_segmentation_accuracy(pred, true))


@pytest.fixture(scope="session")
def msa():
    """``msa(prediction, ground_truth) -> float``."""
    return _msa_function()
