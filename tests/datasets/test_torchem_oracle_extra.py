"""torch-em as the reference for more datasets: IHC TMA, LyNSeC, TNBC, U20S, TOIAM, NIS3D, YeaZ, PNAS,
Parhyale, Usiigaci, NuInsSeg. Archives in the real inner layout (the fact's source, torch-em 0.10.9's loader,
is named at each builder) go through torch-em's own functions and the paper's steps (``_paper``) and through
apgbench; prepared images and labels must be equal. Split windows such as ``[25:]`` are shortened for tiny
archives, on both sides alike.
"""

from __future__ import annotations

import shutil
import tarfile

import h5py
import numpy as np
import pytest

from apgbench.datasets import get_dataset_config

from . import _paper
from ._helpers import disks, write, zip_tree

pytest.importorskip("torch_em", reason="torch-em (the reference implementation) comes with the musam extra")
iio = pytest.importorskip("imageio.v3")


def _grey(labels, dtype=np.uint8, offset=20):
    return ((labels > 0) * 100 + labels % 7 + offset).astype(dtype)


def _split(dataset_id, **options):
    config = get_dataset_config(dataset_id)
    update = {"options": {**config.split.options, **options}} if options else {"rule": "all", "options": {}}
    return config.model_copy(update={"split": config.split.model_copy(update=update)})


def _read_all(ipaths, lpaths):
    return [(iio.imread(i), iio.imread(lab)) for i, lab in zip(ipaths, lpaths)]


def test_ihc_tma_summed_mask_channels(tmp_path):
    from torch_em.data.datasets.histopathology.srsanet import get_srsanet_paths

    # srsanet.py: IHC_TMA_dataset.zip holds IHC_TMA_dataset/images/fold<k>_*.png and masks/*.npy (2, H, W);
    # labels = connected components of mask[0] + mask[1] in the stored dtype. The paper reads torch-em's paths
    # as they are (no crop, no filter: util.py:697-700).
    src = tmp_path / "src" / "IHC_TMA_dataset"
    for i, fold in enumerate(("fold1", "fold3", "fold3", "fold3")):
        a, b = disks((40, 40), 4, seed=i), disks((40, 40), 3, seed=20 + i)
        write(src / "images" / f"{fold}_{i}.png", np.dstack([_grey(a + b)] * 3))
        mask = np.stack([(a > 0) * 128, (b > 0) * 128]).astype(np.uint8)  # 128 + 128 wraps to 0 in uint8
        write(src / "masks" / f"{fold}_{i}.npy", mask if i != 3 else np.zeros_like(mask))
    archive = zip_tree(tmp_path / "src", tmp_path / "IHC_TMA_dataset.zip")
    _paper.copy_to(archive, tmp_path / "te", "IHC_TMA_dataset.zip")
    expected = _read_all(*get_srsanet_paths(str(tmp_path / "te"), split="test", download=False))
    samples = _paper.prepare_with_apgbench("ihc-tma", archive, tmp_path / "data")
    _paper.assert_same(samples, expected, partition=True)  # torch-em's ids are skimage's; so are ours
    assert not samples[-1].labels.any()  # all-zero labels are kept, as the paper did


def test_lynsec_ihc_arrays_split_apart(tmp_path):
    from torch_em.data.datasets.histopathology.lynsec import get_lynsec_paths

    # lynsec.py: lynsec.zip is unzipped into data/, which holds 'lynsec 1' (IHC) and 'lynsec 2' (H&E) folders
    # of (H, W, 4) arrays: RGB then the instance label. The test split is unseeded (not comparable): all IHC.
    src = tmp_path / "src"
    for folder in ("lynsec 1", "lynsec 2"):
        for i in range(3):
            labels = disks((32, 32), 4, seed=i)
            (src / folder).mkdir(parents=True, exist_ok=True)
            np.save(src / folder / f"{i}.npy", np.dstack([_grey(labels)] * 3 + [labels]).astype(np.uint8))
    archive = zip_tree(src, tmp_path / "lynsec.zip")
    _paper.copy_to(archive, tmp_path / "te", "lynsec.zip")
    expected = _read_all(*get_lynsec_paths(str(tmp_path / "te"), choice="ihc", download=False))
    samples = _paper.prepare_with_apgbench("lynsec", archive, tmp_path / "data", _split("lynsec"))
    _paper.assert_same(samples, expected)


def test_tnbc_binary_masks_to_components_alpha_dropped(tmp_path):
    from torch_em.data.datasets.histopathology.tnbc import get_tnbc_data

    # tnbc.py: TNBC_NucleiSegmentation.zip holds TNBC_NucleiSegmentation/Slide_<k>/*.png (RGBA) and GT_<k>/*.png
    # binary masks, plus __MACOSX/ (removed after conversion); the h5 raw is RGB channel-first.
    src = tmp_path / "src"
    for k in ("01", "02"):
        for i in (1, 2):
            labels = disks((40, 40), 12, seed=int(k) * 10 + i, radius=3)
            write(
                src / "TNBC_NucleiSegmentation" / f"Slide_{k}" / f"{k}_{i}.png",
                np.dstack([_grey(labels)] * 3 + [np.full((40, 40), 255, np.uint8)]),
            )
            write(
                src / "TNBC_NucleiSegmentation" / f"GT_{k}" / f"{k}_{i}.png",
                ((labels > 0) * 255).astype(np.uint8),
            )
    write(src / "__MACOSX" / "TNBC_NucleiSegmentation" / "._x.png", np.zeros((2, 2), np.uint8))
    archive = zip_tree(src, tmp_path / "TNBC_NucleiSegmentation.zip")
    _paper.copy_to(archive, tmp_path / "te", "TNBC_NucleiSegmentation.zip")
    data_dir = get_tnbc_data(str(tmp_path / "te"), download=False)
    names = ["01_1", "01_2", "02_1", "02_2"]
    files = [h5py.File(f"{data_dir}/{n}.h5", "r") for n in names]
    expected = _paper.process(
        [f["raw"][:].transpose(1, 2, 0) for f in files],  # util.py:331-339
        [f["labels/instances"][:] for f in files],
        criterion=10,
    )
    samples = _paper.prepare_with_apgbench("tnbc", archive, tmp_path / "data", _split("tnbc"))
    _paper.assert_same(samples, expected)


def test_u20s_first_mask_channel_components(tmp_path):
    from torch_em.data.datasets.light_microscopy.u20s import get_u20s_paths

    # u20s.py: images.zip and masks.zip are unzipped into one folder: images/*.tif, masks/*.png (RGBA) and the
    # masks archive's __MACOSX/; labels are components of channel 0.
    src = tmp_path / "src"
    for i in range(4):
        labels = disks((520, 530) if i == 3 else (40, 40), 6, seed=i, radius=4)
        write(src / "i" / "images" / f"IXMtest_A0{i}_s1_w1.tif", _grey(labels, np.uint16))
        write(
            src / "m" / "masks" / f"IXMtest_A0{i}_s1_w1.png",
            np.dstack([(labels > 0) * 255] * 3 + [np.full(labels.shape, 255)]).astype(np.uint8),
        )
    write(src / "m" / "__MACOSX" / "masks" / "._a.png", np.zeros((2, 2), np.uint8))
    images_zip, masks_zip = (
        zip_tree(src / "i", tmp_path / "images.zip"),
        zip_tree(src / "m", tmp_path / "masks.zip"),
    )
    te = tmp_path / "te"
    _paper.copy_to(images_zip, te, "images.zip")
    _paper.copy_to(masks_zip, te, "masks.zip")
    ipaths, lpaths = get_u20s_paths(str(te), download=False)
    start = 1  # [25:] in the paper (util.py:396-402)
    expected = _paper.process(
        [_paper.center_crop(iio.imread(p)) for p in ipaths[start:]],
        [_paper.center_crop(iio.imread(p)) for p in lpaths[start:]],
        criterion=5,
    )
    both = tmp_path / "both"
    both.mkdir()
    shutil.copy(images_zip, both / "images.zip")
    shutil.copy(masks_zip, both / "masks.zip")
    samples = _paper.prepare_with_apgbench("u20s", both, tmp_path / "data", _split("u20s", start=start))
    _paper.assert_same(samples, expected, partition=True)


def test_toiam_frames_and_seg_masks_by_position(tmp_path):
    from torch_em.data.datasets.light_microscopy.toiam import get_toiam_paths

    # toiam.py: ctc_format.zip is unzipped into data/: Cell Tracking Challenge folders 0<k>/ (frames) and
    # 0<k>_GT/SEG/man_seg*.tif at the top; two natsorted lists paired by position.
    src = tmp_path / "src"
    for seq in ("01", "02"):
        for t in range(3):
            labels = disks((40, 40), 5, seed=int(seq) * 10 + t, radius=3)
            write(src / seq / f"t{t:03d}.tif", _grey(labels, np.uint16))
            write(src / f"{seq}_GT" / "SEG" / f"man_seg{t:03d}.tif", labels)
    archive = zip_tree(src, tmp_path / "ctc_format.zip")
    _paper.copy_to(archive, tmp_path / "te", "ctc_format.zip")
    ipaths, lpaths = get_toiam_paths(str(tmp_path / "te"), download=False)
    expected = _paper.process(*zip(*_read_all(ipaths[-4:], lpaths[-4:])), criterion=5)  # [-200:] in the paper
    samples = _paper.prepare_with_apgbench("toiam", archive, tmp_path / "data", _split("toiam", start=-4))
    _paper.assert_same(samples, expected)


def test_nis3d_cross_image_test_slices_foreground_centred(tmp_path):
    from torch_em.data.datasets.light_microscopy.nis3d import get_nis3d_paths

    # nis3d.py: NIS3D.zip holds NIS3D/suggestive splitting/<type>/<split>/<sample>/{data,GroundTruth}.tif;
    # MusMusculus_2's ground truth is named gt.tif (renamed by torch-em, which asserts it exists).
    base = tmp_path / "src" / "NIS3D" / "suggestive splitting" / "cross-image"
    for sample, shape, n in (("MusMusculus_2", (48, 48), 21), ("Drosophila_1", (520, 530), 80)):
        labels = np.stack([disks(shape, n, seed=z, radius=2) for z in range(2)]).astype(np.uint16)
        if shape[0] > 512:
            labels[:, :300] = 0  # objects off-centre: the crop follows the foreground box
        write(base / "test" / sample / "data.tif", _grey(labels, np.uint16))
        write(base / "test" / sample / ("gt.tif" if sample == "MusMusculus_2" else "GroundTruth.tif"), labels)
    write(base / "train" / "X" / "data.tif", np.zeros((1, 8, 8), np.uint16))
    write(base / "train" / "X" / "GroundTruth.tif", np.zeros((1, 8, 8), np.uint16))
    archive = zip_tree(tmp_path / "src", tmp_path / "NIS3D.zip")
    _paper.copy_to(archive, tmp_path / "te", "NIS3D.zip")
    ipaths, lpaths = get_nis3d_paths(
        str(tmp_path / "te"), split="test", split_type="cross-image", download=False
    )
    pairs = [
        _paper.center_crop(im, seg=lab)
        for im, lab in zip(  # util.py:495-507
            _paper.slices([iio.imread(p) for p in ipaths]), _paper.slices([iio.imread(p) for p in lpaths])
        )
    ]
    expected = _paper.process(*zip(*pairs), criterion=20)
    samples = _paper.prepare_with_apgbench("nis3d", archive, tmp_path / "data")
    _paper.assert_same(samples, expected)
    assert samples[0].meta["crop"][0] > 0  # Drosophila_1 comes first


def test_yeaz_split_is_torch_ems_seeded_one(tmp_path):
    from torch_em.data.datasets.light_microscopy.yeaz import get_yeaz_paths

    # yeaz.py: gold-standard-BF-V-1.tar.gz unpacks to gold-standard-BF-V-1/*_im.tif and *_mask.tif; the split
    # is train_test_split(natsorted names, test_size=0.2, random_state=42) (torch-em 0.10.9).
    src = tmp_path / "src" / "gold-standard-BF-V-1"
    for i in range(12):
        labels = disks((40, 40), 5, seed=i, radius=3)
        write(src / f"BF_{i}_im.tif", _grey(labels, np.uint16))
        write(src / f"BF_{i}_mask.tif", labels)
    archive = tmp_path / "gold-standard-BF-V-1.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(src, arcname="gold-standard-BF-V-1")
    _paper.copy_to(archive, tmp_path / "te", archive.name)
    ipaths, lpaths = get_yeaz_paths(str(tmp_path / "te"), choice="bf", split="test")
    expected = _paper.process(
        [_paper.center_crop(iio.imread(p)) for p in ipaths],
        [_paper.center_crop(iio.imread(p)) for p in lpaths],
        criterion=5,
    )
    samples = _paper.prepare_with_apgbench("yeaz", archive, tmp_path / "data")
    assert sorted(s.meta["source"].split("/")[-1] for s in samples) == sorted(
        p.split("/")[-1] for p in ipaths
    )
    order = {p.split("/")[-1]: i for i, p in enumerate(ipaths)}  # torch-em lists the test names in draw order
    samples.sort(key=lambda s: order[s.meta["source"].split("/")[-1]])
    _paper.assert_same(samples, expected)


def test_pnas_stacks_sorted_by_name_background_one(tmp_path):
    from torch_em.data.datasets.light_microscopy.pnas_arabidopsis import get_pnas_arabidopsis_paths

    # pnas_arabidopsis.py: PNAS.zip holds PNAS/plant<k>/processed_tiffs/*trim-acylYFP.tif and
    # segmentation_tiffs/<same stem>*.tif; each stack with exactly one segmentation becomes data/<stem>.h5,
    # and 0.10.9 sorts those files (the paper's code had an unsorted glob).
    for plant, times in (("plant2", ("0hrs", "12hrs")), ("plant13", ("4hrs",))):
        base = tmp_path / "src" / "PNAS" / plant
        for t in times:
            labels = np.stack([disks((96, 96), 50, seed=len(t) + z, radius=2) for z in range(2)]) + 1
            stem = f"{t}_{plant}_trim-acylYFP"
            write(base / "processed_tiffs" / f"{stem}.tif", (labels * 2).astype(np.uint8))
            write(
                base / "segmentation_tiffs" / f"{stem}_hmin_2_asf_1_s_2.00_clean_3.tif",
                labels.astype(np.uint16),
            )
    archive = zip_tree(tmp_path / "src", tmp_path / "PNAS.zip")
    _paper.copy_to(archive, tmp_path / "te", "PNAS.zip")
    fpaths = get_pnas_arabidopsis_paths(str(tmp_path / "te"), download=False)[-2:]  # [-10:] in the paper
    images = _paper.slices([h5py.File(p, "r")["raw"][:] for p in fpaths])
    labels = _paper.slices([h5py.File(p, "r")["labels"][:] for p in fpaths])
    expected = _paper.process(images, labels, criterion=50, ignore_label=1)  # util.py:638-656
    samples = _paper.prepare_with_apgbench(
        "pnas-arabidopsis", archive, tmp_path / "data", _split("pnas-arabidopsis", start=-2)
    )
    _paper.assert_same(samples, expected)
    assert samples[0].meta["source"].endswith("12hrs_plant2_trim-acylYFP.tif")


def test_parhyale_annotated_timepoints(tmp_path):
    from torch_em.data.datasets.light_microscopy.parhyale_regen import _preprocess_data

    # parhyale_regen.py: every file of Zenodo record 8252039 lands in one folder: the 4D (t, z, y, x) series
    # Parhyale_H2B-EGFP_images_tp01-50.tif and one *_instance-segmentation-labels_*.tif per annotated timepoint
    # (0, 10, 20, 30, 40, 49). The download loop needs the network; its conversion is called here on the files.
    src = tmp_path / "src"
    series = np.zeros((50, 2, 32, 32), np.uint16)
    for k, t in enumerate((0, 10, 20, 30, 40, 49)):
        labels = np.stack([disks((32, 32), 10, seed=10 * k + z, radius=2) for z in range(2)]).astype(
            np.uint16
        )
        series[t] = _grey(labels, np.uint16)
        write(src / f"Parhyale_H2B-EGFP_instance-segmentation-labels_tp{t + 1:02d}.tif", labels)
    write(src / "Parhyale_H2B-EGFP_images_tp01-50.tif", series)
    archive = zip_tree(src, tmp_path / "parhyale_regen_8252039.zip")
    te = tmp_path / "te"
    shutil.copytree(src, te / "data")
    _preprocess_data(str(te), str(te / "data"))
    from natsort import natsorted

    fpaths = natsorted(str(p) for p in (te / "preprocessed").glob("*.h5"))
    images = _paper.slices([h5py.File(p, "r")["raw"][:] for p in fpaths])
    labels = _paper.slices([h5py.File(p, "r")["labels"][:] for p in fpaths])
    expected = _paper.process(images[3:], labels[3:], criterion=10)  # [40:] in the paper (util.py:523-526)
    samples = _paper.prepare_with_apgbench(
        "parhyale-regen", archive, tmp_path / "data", _split("parhyale-regen", start=3)
    )
    _paper.assert_same(samples, expected)


def test_usiigaci_train_sets_and_example_frames(tmp_path):
    from torch_em.data.datasets.light_microscopy.usiigaci import get_usiigaci_paths

    # usiigaci.py: a clone of oist/Usiigaci: 'Mask R-CNN/train/set<k>/{raw.tif,instances_ids.png}' plus
    # ExampleData/T98G_sample/*.tif with T98G_sample_mask_avg/*.png, two natsorted lists by position.
    repo = tmp_path / "src" / "Usiigaci-9501d80c747cf82870dd596818fcf5c28c94d733"
    for k in (1, 2, 10):
        labels = disks((40, 40), 4, seed=k, radius=3)
        write(repo / "Mask R-CNN" / "train" / f"set{k}" / "raw.tif", _grey(labels, np.uint16))
        write(repo / "Mask R-CNN" / "train" / f"set{k}" / "instances_ids.png", labels.astype(np.uint8))
    for t in range(2):
        labels = disks((530, 520), 5, seed=30 + t, radius=4)
        write(repo / "ExampleData" / "T98G_sample" / f"T98G_{t}.tif", _grey(labels))
        write(repo / "ExampleData" / "T98G_sample_mask_avg" / f"T98G_{t}_mask.png", labels.astype(np.uint8))
    archive = zip_tree(tmp_path / "src", tmp_path / "Usiigaci-9501d80c.zip")
    shutil.copytree(repo, tmp_path / "te" / "Usiigaci")  # the clone torch-em would make
    ipaths, lpaths = get_usiigaci_paths(str(tmp_path / "te"), split="train")
    expected = _paper.process(
        [_paper.center_crop(iio.imread(p)) for p in ipaths],
        [_paper.center_crop(iio.imread(p)) for p in lpaths],
        criterion=3,
    )
    samples = _paper.prepare_with_apgbench("usiigaci", archive, tmp_path / "data")
    _paper.assert_same(samples, expected)


def test_nuinsseg_organs_in_listing_order(tmp_path):
    from torch_em.data.datasets import util
    from torch_em.data.datasets.histopathology.nuinsseg import get_nuinsseg_paths

    # nuinsseg.py: the Kaggle zip is unzipped into data/: one folder per organ with 'tissue images/*.png' and
    # 'label masks modify/*.tif'; organs in unsorted-glob order, images natsorted per organ. The paper drops
    # non-RGB images after its [50:] split (util.py:341-360).
    src = tmp_path / "src"
    for organ, n in (("mouse kidney", 3), ("human bladder", 3), ("human brain", 2)):
        for i in range(n):
            labels = disks((32, 32), 9, seed=i + len(organ), radius=2)
            write(
                src / organ / "tissue images" / f"{organ[:5]}_{i}.png",
                np.dstack([_grey(labels)] * (4 if i == 2 else 3)),
            )
            write(src / organ / "label masks modify" / f"{organ[:5]}_{i}.tif", labels)
    archive = zip_tree(src, tmp_path / "nuinsseg.zip")
    util.unzip(str(archive), str(tmp_path / "te" / "data"), remove=False)
    ipaths, lpaths = get_nuinsseg_paths(str(tmp_path / "te"), download=False)
    pairs = [(im, lab) for im, lab in _read_all(ipaths[3:], lpaths[3:]) if im.ndim == 3 and im.shape[-1] == 3]
    expected = _paper.process(*zip(*pairs), criterion=10)
    samples = _paper.prepare_with_apgbench(
        "nuinsseg", archive, tmp_path / "data", _split("nuinsseg", start=3)
    )
    _paper.assert_same(samples, expected)
