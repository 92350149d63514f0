"""`classic` on volumes: a 3D watershed that uses the voxel size, better than slice-wise + stitching."""

from __future__ import annotations

import numpy as np
import pytest

from apgbench.datasets import get_dataset_config, load_dataset
from apgbench.methods import get_method
from apgbench.metrics import mean_segmentation_accuracy


@pytest.fixture(scope="module")
def volumes():
    return list(load_dataset("synthetic-nuclei-3d"))[:2]


@pytest.fixture(scope="module")
def classic():
    method = get_method("classic")()
    method.prepare("cpu", "nuclei-fluo")
    return method


def test_declares_native_3d():
    cls = get_method("classic")
    assert cls.supports_3d == "native" and cls.volume_mode({}) == "3d"
    assert cls.volume_mode({"stitch": "overlap"}) == "2d+stitch"


def test_segments_volumes_with_the_dataset_anisotropy(volumes, classic):
    spacing = get_dataset_config("synthetic-nuclei-3d").voxel_size
    assert spacing == (2.0, 1.0, 1.0)
    for sample in volumes:
        labels = classic.segment(sample.image, ndim=3, spacing=spacing)
        assert labels.shape == sample.labels.shape and labels.dtype == np.uint32
        aware = mean_segmentation_accuracy(sample.labels, labels)
        isotropic = mean_segmentation_accuracy(sample.labels, classic.segment(sample.image, ndim=3))
        assert aware > 0.4 and aware > isotropic + 0.05  # z voxels twice as large: seeds and smoothing differ


def test_3d_is_not_slice_wise(volumes, classic):
    """The native path beats 2D+stitch of the same method, and its objects span several slices."""
    stitched = get_method("classic")(stitch="overlap")
    stitched.prepare("cpu", "nuclei-fluo")
    sample = volumes[0]
    native = classic.segment(sample.image, spacing=(2.0, 1.0, 1.0))
    slice_wise = stitched.segment(sample.image, spacing=(2.0, 1.0, 1.0))
    assert not np.array_equal(native, slice_wise)
    extents = [np.ptp(np.nonzero(native == i)[0]) + 1 for i in np.unique(native)[1:]]
    assert np.median(extents) >= 4
    assert mean_segmentation_accuracy(sample.labels, native) > mean_segmentation_accuracy(
        sample.labels, slice_wise
    )


def test_2d_output_unchanged_by_the_3d_path(classic):
    """A 2D image still goes through the 2D pipeline (scalar sigmas, no sampling)."""
    sample = next(iter(load_dataset("synthetic-nuclei")))
    labels = classic.segment(sample.image)
    assert labels.shape == sample.labels.shape
    assert mean_segmentation_accuracy(sample.labels, labels) > 0.3


def test_local_threshold_in_3d(volumes):
    """The local threshold's block shrinks along the coarser z axis (a 101-voxel block would not fit 24 slices)."""
    method = get_method("classic")(threshold="local")
    method.prepare("cpu", "nuclei-fluo")
    sample = volumes[0]
    labels = method.segment(sample.image, spacing=(2.0, 1.0, 1.0))
    assert mean_segmentation_accuracy(sample.labels, labels) > 0.35
