"""HPA, MoNuSeg, PUMA and LIVECell prepared exactly as the paper's data: torch-em itself is the oracle.

Each test builds small archives in the real inner layout of the download (the layout fact and where it comes
from is stated per test), prepares them with apgbench (download from localhost -> verify -> extract ->
prepare) and with torch-em's own conversion function followed by the micro-sam ``util.py`` (4f6d45e2) steps
(centre crop, HPA resize), and asserts equal images and label images. The tests skip when torch-em (or
rasterio/geopandas, pycocotools) is not installed.
"""

from __future__ import annotations

import json
import shutil
import warnings
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import h5py
import numpy as np
import pytest

from apgbench.datasets import get_dataset_config, load_dataset
from apgbench.datasets.manage import prepare_cached

from ._helpers import fetch_and_prepare, published, write, zip_tree

pytestmark = pytest.mark.network
TORCH_EM = "torch-em is not installed (pip install micro-sam, or -c constraints.txt torch-em)"


@contextmanager
def _oracle():
    """torch-em's own deprecation warnings are not ours to fix (the suite treats warnings as errors)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _centre_crop(array: np.ndarray, size: int = 512) -> np.ndarray:
    """micro-sam util.py:110-155 ``_make_center_crop`` without labels: top = (H - 512) // 2, left likewise."""
    h, w = min(size, array.shape[0]), min(size, array.shape[1])
    top, left = (array.shape[0] - h) // 2, (array.shape[1] - w) // 2
    return array[top : top + h, left : left + w]


def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 12) -> list[list[float]]:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return [[round(float(cx + rx * np.cos(a)), 3), round(float(cy + ry * np.sin(a)), 3)] for a in t]


def _by_source(samples) -> dict:
    return {s.meta["source"]: s for s in samples}


# --- HPA -----------------------------------------------------------------------------------------------------
def _hpa_features(rng, size: int) -> list[dict]:
    polys = [_ellipse(*rng.uniform(20, size - 20, 2), *rng.uniform(8, 18, 2)) for _ in range(6)]
    polys.append(_ellipse(size / 2, -3.0, 12, 9))  # crosses the border: torch-em clamps rows onto it
    polys.append(polys[0])  # a duplicate polygon: torch-em skips it
    features = [
        {
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [[*p, p[0]]]},
            "properties": {"label": "cell"},
        }
        for p in polys
    ]
    features.append(
        {"type": "Feature", "geometry": {"type": "LineString", "coordinates": polys[1][:4]}, "properties": {}}
    )  # edges only, no label
    return features


def test_hpa_equals_torch_em_and_micro_sam_resize(tmp_path, server):
    hpa = pytest.importorskip("torch_em.data.datasets.light_microscopy.hpa", reason=TORCH_EM)
    from skimage.transform import resize

    # Layout: torch-em hpa.py _process_hpa_data/_process_image: hpa_dataset_v2/{train,valid,test}/<sample>/
    # {microtubules,protein,nuclei,er}.png plus annotation.json (not in test). The paper evaluates 'train'.
    rng = np.random.default_rng(0)
    base, size = tmp_path / "src" / "hpa_dataset_v2", 128
    for split, n in (("train", 3), ("valid", 1), ("test", 1)):
        for i in range(n):
            folder = base / split / f"{split}_{i:03d}"
            for channel in ("microtubules", "protein", "nuclei", "er"):
                write(folder / f"{channel}.png", rng.integers(0, 255, (size, size), dtype=np.uint8))
            if split != "test":
                (folder / "annotation.json").write_text(
                    json.dumps({"type": "FeatureCollection", "features": _hpa_features(rng, size)})
                )
    archive = zip_tree(tmp_path / "src", tmp_path / "hpa_dataset_v2.zip")
    config = published("hpa", server, {"hpa_dataset_v2.zip": archive})
    ours = _by_source(fetch_and_prepare(config, tmp_path / "data"))
    assert len(ours) == 3

    # micro-sam util.py:559-569: protein channel, resize to 512 (images anti-aliased, labels bilinear, truncated)
    raw_trafo = partial(resize, output_shape=(512, 512), anti_aliasing=True, preserve_range=True)
    label_trafo = partial(resize, output_shape=(512, 512), anti_aliasing=False, preserve_range=True)
    spurious, originals = 0, {}
    for i in range(3):
        folder = base / "train" / f"train_{i:03d}"
        with _oracle():
            hpa._process_image(str(folder), str(tmp_path / f"t{i}.h5"), with_labels=True)
        with h5py.File(tmp_path / f"t{i}.h5", "r") as f:
            image, labels = f["raw/protein"][:], f["labels"][:]
        sample = ours[f"hpa_dataset_v2/train/train_{i:03d}/protein.png"]
        np.testing.assert_array_equal(sample.image, raw_trafo(image).astype(image.dtype))
        np.testing.assert_array_equal(sample.labels, label_trafo(labels).astype(labels.dtype))
        nearest = resize(labels, (512, 512), order=0, anti_aliasing=False, preserve_range=True)
        spurious += int(((sample.labels != nearest) & (sample.labels > 0)).sum())
        originals[sample.meta["source"]] = set(np.unique(labels))
    assert spurious > 0  # the paper's quirk is reproduced: border pixels carry the id of another cell

    # hpa@corrected: nearest-neighbour labels, only real ids
    prepared = prepare_cached(get_dataset_config("hpa@corrected"), tmp_path / "data")
    corrected = list(load_dataset(get_dataset_config("hpa@corrected"), tmp_path / "data"))
    assert prepared.parent.name == "hpa@corrected" and len(corrected) == 3
    for sample in corrected:
        assert set(np.unique(sample.labels)) <= originals[sample.meta["source"]]


# --- MoNuSeg -------------------------------------------------------------------------------------------------
MONUSEG_TEST = [  # the 14 images of the MoNuSeg 2018 test set (MoNuSegTestData.zip)
    "TCGA-2Z-A9J9-01A-01-TS1",
    "TCGA-44-2665-01B-06-BS6",
    "TCGA-69-7764-01A-01-TS1",
    "TCGA-A6-6782-01A-01-BS1",
    "TCGA-AC-A2FO-01A-01-TS1",
    "TCGA-AO-A0J2-01A-01-BSA",
    "TCGA-CU-A0YN-01A-02-BSB",
    "TCGA-EJ-A46H-01A-03-TSC",
    "TCGA-FG-A4MU-01B-01-TS1",
    "TCGA-GL-6846-01A-01-BS1",
    "TCGA-HC-7209-01A-01-TS1",
    "TCGA-HT-8564-01Z-00-DX1",
    "TCGA-IZ-8196-01A-01-BS1",
    "TCGA-ZF-A9R5-01A-01-TS1",
]


def _aperio_xml(regions: list[list[list[float]]]) -> str:
    """Aperio ImageScope XML as in MoNuSeg: Annotations/Annotation/Regions/Region/Vertices/Vertex X Y Z."""
    body = "".join(
        f'<Region Id="{k + 1}" Type="0" Zoom="1" Selected="0"><Attributes/><Vertices>'
        + "".join(f'<Vertex X="{x}" Y="{y}" Z="0"/>' for x, y in region)
        + "</Vertices></Region>"
        for k, region in enumerate(regions)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><Annotations MicronsPerPixel="0.252000">'
        '<Annotation Id="1" Name="" ReadOnly="0" LineColor="65280"><Attributes/><Regions>'
        '<RegionAttributeHeaders><AttributeHeader Id="9999" Name="Region" ColumnWidth="-1"/>'
        f"</RegionAttributeHeaders>{body}</Regions><Plots/></Annotation></Annotations>"
    )


def _numbers_from_one(monuseg_util, tmp_path: Path) -> bool:
    """Whether this torch-em numbers XML regions from 1 (0.10.9) or from 0 (the paper's torch-em, <= 0.10.3)."""
    xml = tmp_path / "probe.xml"
    xml.write_text(_aperio_xml([_ellipse(10, 10, 5, 5)]))
    return int(monuseg_util.generate_labeled_array_from_xml((20, 20), str(xml)).max()) == 1


def test_monuseg_test_archive_equals_torch_em(tmp_path, server):
    monuseg = pytest.importorskip("torch_em.data.datasets.histopathology.monuseg", reason=TORCH_EM)
    import imageio.v3 as iio
    from torch_em.data.datasets import util as torch_em_util

    # Layout: torch-em monuseg.py _process_monuseg: monuseg_test.zip holds MoNuSegTestData/<name>.tif and
    # <name>.xml for the 14 test images (1000 x 1000 RGB), paired by sorted position.
    rng = np.random.default_rng(1)
    folder = tmp_path / "src" / "MoNuSegTestData"
    for name in MONUSEG_TEST:
        image = np.broadcast_to(np.arange(1000, dtype=np.uint8)[:, None, None] % 200, (1000, 1000, 3)).copy()
        write(folder / f"{name}.tif", image)
        regions = [
            _ellipse(*rng.uniform(260, 740, 2), *rng.uniform(5, 14, 2), n=int(rng.integers(8, 20)))
            for _ in range(25)
        ]  # overlapping ellipses with fractional vertices
        (folder / f"{name}.xml").write_text(_aperio_xml(regions))
    archive = zip_tree(tmp_path / "src", tmp_path / "monuseg_test.zip")
    config = published("monuseg", server, {"monuseg_test.zip": archive})
    ours = _by_source(fetch_and_prepare(config, tmp_path / "data"))
    variant = get_dataset_config("monuseg@corrected")
    prepare_cached(variant, tmp_path / "data")  # from the cached raw download, into its own file
    corrected = _by_source(load_dataset(variant, tmp_path / "data"))
    assert len(ours) == 14 and len(corrected) == 14

    oracle = tmp_path / "torch_em"
    oracle.mkdir()
    shutil.copyfile(archive, oracle / "monuseg_test.zip")
    with _oracle():
        monuseg._process_monuseg(str(oracle), "test")
        image_paths, label_paths = monuseg.get_monuseg_paths(str(oracle), "test")
        from_one = _numbers_from_one(torch_em_util, tmp_path)
    assert len(image_paths) == 14
    for image_path, label_path in zip(image_paths, label_paths):
        source = f"MoNuSegTestData/{Path(image_path).name}"
        image, labels = iio.imread(image_path), iio.imread(label_path)  # micro-sam util.py:321-322
        np.testing.assert_array_equal(ours[source].image, _centre_crop(image))
        # torch-em 0.10.9 fixed the paper's 0-based numbering (util.py generate_labeled_array_from_xml,
        # enumerate(xy, start=1)); everything else (int32 vertices, overwrite order) is unchanged, so the
        # paper's labels are the oracle's minus one.
        paper = np.where(labels > 0, labels.astype(np.int64) - 1, 0) if from_one else labels
        np.testing.assert_array_equal(ours[source].labels, _centre_crop(paper))
        if from_one:
            np.testing.assert_array_equal(corrected[source].labels, _centre_crop(labels))
        assert np.unique(ours[source].labels).size < np.unique(corrected[source].labels).size


def test_monuseg_corrected_variant_keeps_every_nucleus(tmp_path, server):
    folder = tmp_path / "src" / "MoNuSegTestData"
    write(folder / f"{MONUSEG_TEST[0]}.tif", np.zeros((1000, 1000, 3), np.uint8))
    regions = [_ellipse(300 + 60 * k, 500.5, 20, 15) for k in range(6)]
    (folder / f"{MONUSEG_TEST[0]}.xml").write_text(_aperio_xml(regions))
    config = published(
        "monuseg", server, {"monuseg_test.zip": zip_tree(tmp_path / "src", tmp_path / "m.zip")}
    )
    paper = fetch_and_prepare(config, tmp_path / "data")[0]
    assert np.unique(paper.labels).tolist() == [0, 1, 2, 3, 4, 5]  # the first nucleus is lost
    variant = get_dataset_config("monuseg@corrected")
    out = prepare_cached(variant, tmp_path / "data")
    corrected = load_dataset(variant, tmp_path / "data")
    assert out == tmp_path / "data" / "monuseg@corrected" / "prepared.h5"
    assert (
        corrected.dataset_id == "monuseg@corrected"
        and (tmp_path / "data" / "monuseg" / "prepared.h5").is_file()
    )
    assert np.unique(next(iter(corrected)).labels).tolist() == [0, 1, 2, 3, 4, 5, 6]
    assert corrected.fingerprint() != load_dataset(config, tmp_path / "data").fingerprint()
