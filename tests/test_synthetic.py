"""Built-in synthetic datasets: seeded, one per domain, touching objects, right image types."""

from __future__ import annotations

import numpy as np
import pytest

from apgbench.datasets import get_dataset_config, load_dataset

IDS = ["synthetic-nuclei", "synthetic-cells", "synthetic-labelfree", "synthetic-histo"]


@pytest.mark.parametrize("dataset_id", IDS)
def test_reproducible_and_well_formed(dataset_id):
    first, second = list(load_dataset(dataset_id)), list(load_dataset(dataset_id))
    assert len(first) == 6 and [s.image_id for s in first] == load_dataset(dataset_id).image_ids
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.labels, b.labels)
        assert a.labels.shape == a.image.shape[:2] and a.labels.max() >= 15
        # touching objects: horizontally or vertically adjacent pixels of two different objects
        lab = a.labels
        touching = [(x != y) & (x > 0) & (y > 0) for x, y in ((lab[1:], lab[:-1]), (lab[:, 1:], lab[:, :-1]))]
        assert any(t.any() for t in touching)
    expected_channels = 3 if dataset_id == "synthetic-histo" else None
    assert (first[0].image.shape[-1] == 3) == (expected_channels == 3)


def test_domains_cover_all_four():
    assert {get_dataset_config(i).domain for i in IDS} == {
        "nuclei-fluo",
        "cells-fluo",
        "cells-labelfree",
        "nuclei-histo",
    }


def test_get_by_id():
    data = load_dataset("synthetic-cells")
    sample = data.get(data.image_ids[2])
    np.testing.assert_array_equal(sample.labels, list(data)[2].labels)
    with pytest.raises(KeyError):
        data.get("nope")
