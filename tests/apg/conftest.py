"""Fixtures of the APG tests."""

from __future__ import annotations

import pytest

from apgbench.metrics import mean_segmentation_accuracy


@pytest.fixture(scope="session")
def msa():
    """``msa(prediction, ground_truth) -> float``."""
    return lambda pred, true: float(mean_segmentation_accuracy(true, pred))
