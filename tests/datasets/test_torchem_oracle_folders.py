"""torch-em as the reference: archives in the real inner layout go through torch-em's own path functions and
the paper's steps (``_paper``, from micro-sam util.py at 4f6d45e2) and through apgbench; the prepared test
images and labels must be equal. Datasets: Vicar, OmniPose, IFNuclei (image/label file folders).

Where each layout comes from is said at each builder (the torch-em 0.10.9 loader source).
"""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from . import _paper
from ._helpers import disks, write, zip_tree

pytest.importorskip("torch_em", reason="torch-em (the reference implementation) comes with the musam extra")
iio = pytest.importorskip("imageio.v3")


def _grey(labels, dtype=np.uint8, offset=20):
    return ((labels > 0) * 100 + labels % 7 + offset).astype(dtype)


def test_vicar_cell_lines_at_archive_top(tmp_path):
    from torch_em.data.datasets.light_microscopy.vicar import get_vicar_paths

    # vicar.py:47-55: labelled.zip is unzipped INTO <path>/labelled; :91 globs labelled/<cell line>/*_img.tif,
    # so the archive's top holds the cell-line folders. Images are float TIFFs, masks PNGs.
    src = tmp_path / "src"
    for line, sizes in (("A2058", [(40, 44), (530, 600)]), ("PC3", [(36, 36), (40, 40)])):
        for i, shape in enumerate(sizes, start=1):
            labels = disks(shape, 3 if (line, i) == ("PC3", 1) else 6, seed=i + len(line), radius=4)
            write(src / line / f"{line}_{i:03d}_img.tif", _grey(labels, np.float32))
            write(src / line / f"{line}_{i:03d}_mask.png", labels.astype(np.uint8))
    archive = zip_tree(src, tmp_path / "labelled.zip")

    _paper.copy_to(archive, tmp_path / "te", "labelled.zip")
    ipaths, lpaths = get_vicar_paths(str(tmp_path / "te"), download=False)
    expected = _paper.process(
        [_paper.center_crop(iio.imread(p)) for p in ipaths],
        [_paper.center_crop(iio.imread(p)) for p in lpaths],
        criterion=5,
    )  # util.py:214-222
    samples = _paper.prepare_with_apgbench("vicar", archive, tmp_path / "data")
    assert len(expected) == 3  # PC3_001 has 3 cells (4 values < 5): dropped by both
    _paper.assert_same(samples, expected)


def test_omnipose_pairs_by_position_of_two_natsorted_lists(tmp_path):
    from torch_em.data.datasets.light_microscopy.omnipose import get_omnipose_paths

    # omnipose.py:43-49: the zip is unzipped into <path>/data; :89-105 globs data/bact_phase/test_sorted/*/
    # and data/worm/test/: both subsets sit at the archive top.
    src = tmp_path / "src"
    for kind in ("ecoli", "subtilis"):
        for i in (1, 2, 10):
            labels = disks((40, 40), 4, seed=i + len(kind), radius=3)
            folder = src / "bact_phase" / "test_sorted" / kind
            write(folder / f"{kind}_{i}.tif", _grey(labels, np.uint16))
            write(folder / f"{kind}_{i}_masks.tif", labels)
            write(folder / f"{kind}_{i}_flows.tif", np.zeros((3, 40, 40), np.float32))
    # Names where position and name disagree: natsort puts 'w.png' before 'w_1.png' but 'w_1_masks.png'
    # before 'w_masks.png', so the paper's code pairs w.png with w_1's mask (and the reverse).
    for stem, n in (("w", 4), ("w_1", 6)):
        labels = disks((40, 40), n, seed=n, radius=3)
        write(src / "worm" / "test" / f"{stem}.png", _grey(labels))
        write(src / "worm" / "test" / f"{stem}_masks.png", labels.astype(np.uint8))
    write(src / "worm" / "train" / "t.png", np.zeros((8, 8), np.uint8))
    archive = zip_tree(src, tmp_path / "omnipose_datasets.zip")

    _paper.copy_to(archive, tmp_path / "te", "datasets.zip")
    ipaths, lpaths = get_omnipose_paths(str(tmp_path / "te"), "test", data_choice=["bact_phase", "worm"])
    assert ipaths[-2].endswith("w.png") and lpaths[-2].endswith("w_1_masks.png")  # the positional pairing
    expected = _paper.process(
        [_paper.center_crop(iio.imread(p)) for p in ipaths],
        [_paper.center_crop(iio.imread(p)) for p in lpaths],
        criterion=3,
    )  # util.py:180-189
    samples = _paper.prepare_with_apgbench("omnipose", archive, tmp_path / "data")
    _paper.assert_same(samples, expected)
    assert samples[-2].meta["label_source"] == "worm/test/w_1_masks.png"


def test_ifnuclei_images_as_read_channel_first_rgb_made_channels_last(tmp_path):
    from torch_em.data.datasets.light_microscopy.ifnuclei import get_ifnuclei_paths

    # ifnuclei.py:77-85: dataset.zip is unzipped into <path>, which then holds rawimages/ and groundtruth/
    # (:107-108); some raw TIFFs are RGB stored channel-first (:62-67). The paper's code reads every raw image
    # as is (util.py:414-426), crops, and makes (3, H, W) channels-last (util.py:45-46).
    src = tmp_path / "src"
    for i in range(13):
        labels = disks((40, 48), 6, seed=i, radius=3)
        name = f"{'otherspecimen' if i > 10 else 'normal' if i % 2 else 'Neuroblastoma'}_{i}.tif"
        if i in (11, 12):  # RGB stored planar, read as (3, H, W)
            rgb = np.stack([_grey(labels, offset=o) for o in (10, 30, 50)])
            (src / "rawimages").mkdir(parents=True, exist_ok=True)
            tifffile.imwrite(src / "rawimages" / name, rgb, photometric="rgb", planarconfig="separate")
        else:
            write(src / "rawimages" / name, _grey(labels, np.uint16))
        write(src / "groundtruth" / name, labels)
    archive = zip_tree(src, tmp_path / "dataset.zip")

    _paper.copy_to(archive, tmp_path / "te", "dataset.zip")
    ipaths, lpaths = get_ifnuclei_paths(str(tmp_path / "te"), download=False)
    ipaths, lpaths = ipaths[10:], lpaths[10:]  # util.py:420-423
    expected = _paper.process(
        [_paper.center_crop(iio.imread(p)) for p in ipaths],
        [_paper.center_crop(iio.imread(p)) for p in lpaths],
        criterion=5,
    )
    samples = _paper.prepare_with_apgbench("ifnuclei", archive, tmp_path / "data")
    _paper.assert_same(samples, expected)
    assert sorted(s.image.shape for s in samples) == [(40, 48), (40, 48, 3), (40, 48, 3)]
