"""The weight-free ``classic`` baseline: input handling and a quality floor on built-in and real data."""

from __future__ import annotations

import numpy as np
import pytest

from apgbench.datasets import load_dataset
from apgbench.methods import get_method
from apgbench.metrics import mean_segmentation_accuracy

from ..conftest import iter_shared_samples

# Floors a little under what the baseline reaches today (nuclei 0.61, cells 0.34, label-free 0.15, histo 0.77):
# a change that breaks a domain's input handling falls far below them.
FLOORS = {
    "synthetic-nuclei": 0.55,
    "synthetic-cells": 0.28,
    "synthetic-labelfree": 0.10,
    "synthetic-histo": 0.7,
}


@pytest.mark.parametrize("dataset", sorted(FLOORS))
def test_quality_floor_on_synthetic(dataset):
    data = load_dataset(dataset)
    with get_method("classic")() as method:
        method.prepare(domain=data.config.domain)
        scores = [mean_segmentation_accuracy(s.labels, method.segment(s.image)) for s in data]
    assert np.mean(scores) >= FLOORS[dataset]


def test_real_fluorescence_nuclei(shared_data):
    method = get_method("classic")()
    method.prepare(domain="nuclei-fluo")
    scores = {
        stem: mean_segmentation_accuracy(labels, method.segment(image))
        for domain, source, stem, image, labels in iter_shared_samples()
        if source == "bbbc039"
    }
    assert len(scores) == 2 and min(scores.values()) >= 0.55


@pytest.mark.parametrize("shape", [(64, 64), (64, 64, 2), (64, 64, 3)])
def test_constant_and_multichannel_inputs(shape):
    method = get_method("classic")()
    method.prepare(domain="nuclei-histo" if shape[-1] == 3 else "cells-fluo")
    assert not method.segment(np.full(shape, 7, np.uint8)).any()
    image = np.zeros(shape, np.float32)
    image[20:40, 20:40] = 1.0
    labels = method.segment(image)
    assert labels.dtype == np.uint32 and labels.shape == shape[:2] and labels.max() >= 1
