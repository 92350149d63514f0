"""The metric on 3D label volumes equals elf's (the paper's implementation), object by object in 3D.

Volumes are built from the real label images in ../shared/data (objects given different z-extents and a shear
across slices) and from the built-in touching ellipsoids; predictions are the typical errors of a 3D method:
shifts in z and y, merges of touching objects, splits along z, missing objects, grown labels, large ids.
"""

from __future__ import annotations

import numpy as np
import pytest
from skimage.segmentation import expand_labels

from apgbench import metrics
from apgbench.datasets.synthetic3d import ellipsoid_labels
from apgbench.metrics import DEFAULT_THRESHOLDS, mean_segmentation_accuracy, score_image, threshold_key

from .conftest import shared_data_dir


@pytest.fixture(scope="module")
def elf_ev():
    return pytest.importorskip("elf.evaluation", reason="python-elf (the reference) is not installed")


@pytest.fixture(params=["dense", "sparse"])
def table_path(request, monkeypatch):
    """Run through both contingency-table code paths (the sparse one also serves large ids)."""
    if request.param == "sparse":
        monkeypatch.setattr(metrics, "_DENSE_MAX_CELLS", 0)
    return request.param


def volume_from_2d(label2d: np.ndarray, depth: int = 12, seed: int = 0) -> np.ndarray:
    """A (depth, H, W) volume: each 2D object exists in its own z-range and drifts by one pixel per slice."""
    rng = np.random.default_rng(seed)
    ids = np.unique(label2d)[1:]
    start = np.zeros(int(label2d.max()) + 1, int)
    stop = np.zeros_like(start)
    start[ids] = rng.integers(0, depth // 2, ids.size)
    stop[ids] = start[ids] + rng.integers(2, depth // 2 + 2, ids.size)
    volume = np.zeros((depth, *label2d.shape), np.uint32)
    for z in range(depth):
        sl = np.roll(label2d, z // 2, axis=1)
        volume[z] = np.where((start[sl] <= z) & (z < stop[sl]), sl, 0)
    return volume


def real_volumes():
    root = shared_data_dir()
    if root is None:
        return []
    import tifffile

    paths = (
        sorted(root.glob("nuclei-fluo/*/*_label.tif"))[:2]
        + sorted(root.glob("cells-labelfree/*/*_label.tif"))[:1]
    )
    out = []
    for i, path in enumerate(paths):
        lab = tifffile.imread(path)[:384, :384]
        out.append((path.stem, volume_from_2d(lab, seed=i)))
    return out


def ellipsoid_volume(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return ellipsoid_labels(rng, (16, 96, 96), n=40, radius=(6.0, 10.0), spacing=(2.0, 1.0, 1.0))


def perturbations(true: np.ndarray, seed: int):
    """(name, prediction) pairs: the kinds of errors a 3D segmentation makes."""
    rng = np.random.default_rng(seed)
    ids = np.unique(true)[1:]
    yield "identity", true.copy()
    yield "shift-z", np.roll(true, 1, axis=0)
    yield "shift-y", np.roll(true, 2, axis=1)
    yield "grown", expand_labels(true, 1)
    lut = np.arange(int(true.max()) + 1, dtype=np.uint64)
    pick = rng.choice(ids, ids.size // 3, replace=False)
    lut[pick] = 0
    yield "missing", lut[true]
    # merge every object with its neighbour along x (touching ones merge into one 3D object)
    lut = np.arange(int(true.max()) + 1, dtype=np.uint64)
    left, right = true[:, :, :-1], true[:, :, 1:]
    touching = (left != right) & (left > 0) & (right > 0)
    for a, b in set(zip(left[touching].tolist(), right[touching].tolist())):
        if rng.random() < 0.5:
            lut[max(a, b)] = lut[min(a, b)]
    yield "merged", lut[true]
    # split objects along z at a random slice: the upper part gets a new id
    split = true.astype(np.uint64).copy()
    cut = rng.integers(1, true.shape[0], size=int(true.max()) + 1)
    zz = np.arange(true.shape[0])[:, None, None]
    upper = (split > 0) & (zz >= cut[true]) & (rng.random(int(true.max()) + 1)[true] < 0.5)
    split[upper] += int(true.max())
    yield "split-z", split
    yield "huge-ids", np.where(true > 0, true.astype(np.uint64) * (2**40 + 7), 0)
    noisy = true.copy()
    flip = rng.random(true.shape) < 0.05
    noisy[flip] = rng.choice(ids, int(flip.sum()))
    yield "salt", noisy


def cases():
    yield from real_volumes()
    for seed in range(2):
        yield f"ellipsoids-{seed}", ellipsoid_volume(seed)


CASES = list(cases())


@pytest.mark.parametrize("name,true", CASES, ids=[c[0] for c in CASES])
def test_volume_scores_equal_elf(name, true, elf_ev, table_path):
    assert true.ndim == 3 and len(np.unique(true)) > 10
    for kind, pred in perturbations(true, seed=len(name)):
        msa, accs = elf_ev.mean_segmentation_accuracy(pred, true, return_accuracies=True)
        scores = score_image(true, pred)
        assert scores["msa"] == pytest.approx(msa, abs=1e-12), kind
        assert [scores[threshold_key(t)] for t in DEFAULT_THRESHOLDS] == pytest.approx(accs, abs=1e-12), kind
        assert mean_segmentation_accuracy(true, pred) == pytest.approx(msa, abs=1e-12), kind


def test_volume_is_not_scored_slice_by_slice():
    """A 3D object split in z is one miss in 3D, while every slice on its own looks perfect."""
    true = np.zeros((6, 20, 20), np.uint16)
    true[:, 5:15, 5:15] = 1
    pred = true.copy()
    pred[3:][true[3:] > 0] = 2
    scores = score_image(true, pred)  # both halves have IoU 1/2: one match at t = 0.5, one false positive
    assert scores["sa50"] == pytest.approx(1 / 2) and scores["sa55"] == 0.0
    assert scores["msa"] == pytest.approx(0.05)
    assert all(score_image(true[z], pred[z])["msa"] == 1.0 for z in range(6))


def test_volume_per_volume_row_counts():
    true = ellipsoid_volume(3)
    scores = score_image(true, true)
    assert scores["n_true"] == scores["n_pred"] == len(np.unique(true)) - 1
    assert scores["msa"] == 1.0


@pytest.mark.skipif(shared_data_dir() is None, reason="the real samples folder ../shared/data is absent")
def test_real_volumes_were_built():
    assert len(real_volumes()) == 3
