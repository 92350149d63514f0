"""PUMA (rasterio) and LIVECell (pycocotools) prepared exactly as the paper's data, torch-em as the oracle.

Same scheme as ``test_torchem_oracle_polygons.py``: archives in the real inner layout, apgbench's preparation
through the real download path, torch-em's own conversion function plus micro-sam's centre crop, equal arrays.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from apgbench.datasets import get_dataset_config, load_dataset
from apgbench.datasets.manage import prepare_cached

from ._helpers import fetch_and_prepare, published, write, zip_tree
from .test_torchem_oracle_polygons import TORCH_EM, _by_source, _centre_crop, _ellipse, _oracle

pytestmark = pytest.mark.network


# --- PUMA ----------------------------------------------------------------------------------------------------
def _puma_geojson(rng) -> dict:
    """QuPath-style export: a FeatureCollection of Polygon/MultiPolygon nuclei with a classification."""
    features = []
    for k in range(40):
        cx, cy = rng.uniform(230, 800, 2)  # bounding box well inside the ROI: the paper's stretch shows
        ring = _ellipse(cx, cy, *rng.uniform(6, 16, 2), n=14)
        ring.append(ring[0])
        geometry = (
            {"type": "Polygon", "coordinates": [ring]}
            if k % 5
            else {"type": "MultiPolygon", "coordinates": [[ring]]}
        )
        features.append(
            {
                "type": "Feature",
                "id": f"n{k}",
                "geometry": geometry,
                "properties": {
                    "objectType": "annotation",
                    "classification": {"name": "nuclei_tumor", "color": [200, 0, 0]},
                },
            }
        )
    return {"type": "FeatureCollection", "features": features}


def test_puma_paper_era_layout_equals_torch_em(tmp_path, server):
    puma = pytest.importorskip("torch_em.data.datasets.histopathology.puma", reason=TORCH_EM)
    pytest.importorskip("geopandas", reason="torch-em's PUMA conversion needs geopandas (test oracle only)")
    pytest.importorskip("rasterio", reason="PUMA needs rasterio: pip install 'apgbench[datasets]'")
    import pandas as pd

    # Layout: Zenodo record 13859989 (paper era) has the files at the top of both archives: torch-em e1f8a188
    # puma.py:72-75 globs data/*metastatic* after unzipping the ROI archive into data/, :111-112 the
    # annotations zip into annotations/nuclei/. ROIs are 1024 x 1024 RGBA TIFFs (e1f8a188 puma.py:127, :155).
    rng = np.random.default_rng(2)
    rois, nuclei = tmp_path / "rois", tmp_path / "nuclei"
    names = [f"training_set_{kind}_roi_{i:03d}" for kind in ("metastatic", "primary") for i in range(1, 6)]
    for name in names:
        write(rois / f"{name}.tif", np.tile(rng.integers(0, 255, (16, 16, 4), dtype=np.uint8), (64, 64, 1)))
        nuclei.mkdir(exist_ok=True)
        (nuclei / f"{name}_nuclei.geojson").write_text(json.dumps(_puma_geojson(rng)))
    config = published(
        "puma",
        server,
        {
            "01_training_dataset_tif_ROIs.zip": zip_tree(rois, tmp_path / "r.zip"),
            "01_training_dataset_geojson_nuclei.zip": zip_tree(nuclei, tmp_path / "g.zip"),
        },
    )
    ours = _by_source(fetch_and_prepare(config, tmp_path / "data"))
    assert sorted(Path(s).stem.split("_")[2] for s in ours) == ["metastatic", "primary"]  # 20% per group

    # torch-em 0.10.9 reads the newer record's folders; its instance rasterisation (from_bounds on the
    # annotations' total_bounds, 1024 x 1024, rasterize, flip + fliplr) is line for line e1f8a188 puma.py:127-153,
    # so the same files are laid out as 0.10.9 expects and its split file lists our test ROIs.
    oracle = tmp_path / "torch_em"
    (oracle / "data").mkdir(parents=True)
    (rois).rename(oracle / "data" / "01_training_dataset_tif_ROIs")
    (oracle / "annotations" / "nuclei").mkdir(parents=True)
    nuclei.rename(oracle / "annotations" / "nuclei" / "01_training_dataset_geojson_nuclei")
    test_ids = [Path(s).stem for s in ours]
    split = {"train": [n for n in names if n not in test_ids], "val": [], "test": test_ids}
    pd.DataFrame.from_dict([split]).to_csv(oracle / "puma_split.csv", index=False)
    with _oracle():
        puma._preprocess_inputs(str(oracle), "nuclei", "test")
    for name in test_ids:
        with h5py.File(oracle / "test" / "preprocessed" / f"{name}.h5", "r") as f:
            image, labels = f["raw"][:].transpose(1, 2, 0), f["labels/instances/nuclei"][:]  # util.py:369-370
        sample = ours[f"{name}.tif"]
        np.testing.assert_array_equal(sample.image, _centre_crop(image))
        np.testing.assert_array_equal(sample.labels, _centre_crop(labels))

    # puma@corrected: nuclei at their pixel coordinates, so a nucleus centre carries a label there
    variant = get_dataset_config("puma@corrected")
    prepare_cached(variant, tmp_path / "data")
    corrected = _by_source(load_dataset(variant, tmp_path / "data"))
    for name in test_ids:
        assert not np.array_equal(corrected[f"{name}.tif"].labels, ours[f"{name}.tif"].labels)
        features = json.loads(
            (
                oracle
                / "annotations"
                / "nuclei"
                / "01_training_dataset_geojson_nuclei"
                / f"{name}_nuclei.geojson"
            ).read_text()
        )["features"]
        hits = 0
        for k, feature in enumerate(features, start=1):
            ring = np.asarray(
                feature["geometry"]["coordinates"][0]
                if feature["geometry"]["type"] == "Polygon"
                else feature["geometry"]["coordinates"][0][0]
            )
            row, col = int(ring[:, 1].mean()) - 256, int(ring[:, 0].mean()) - 256  # 512 crop of 1024
            if 0 <= row < 512 and 0 <= col < 512:
                hits += corrected[f"{name}.tif"].labels[row, col] == k
        assert hits > 0


# --- LIVECell ------------------------------------------------------------------------------------------------
def _coco(rng, names: list[str]) -> dict:
    from pycocotools import mask as mask_api

    coco = {
        "images": [],
        "annotations": [],
        "categories": [{"id": 1, "name": "cell"}, {"id": 2, "name": "debris"}],
    }
    ann_id = 0
    for image_id, name in enumerate(names, start=1):
        coco["images"].append({"id": image_id, "file_name": name, "height": 520, "width": 704})
        for _k in range(20):
            ring = _ellipse(
                *rng.uniform(120, 600, 1), *rng.uniform(120, 400, 1), *rng.uniform(4, 40, 2), n=10
            )
            area = float(rng.choice([100.0, 250.0, rng.uniform(30, 3000)]))  # ties, and areas unlike the mask
            ann_id += 1
            coco["annotations"].append(
                {
                    "id": ann_id,
                    "image_id": image_id,
                    "category_id": 1,
                    "iscrowd": 0,
                    "area": area,
                    "bbox": [0, 0, 1, 1],
                    "segmentation": [[v for xy in ring for v in xy]],
                }
            )
        ann_id += 1  # another category: torch-em keeps only 'cell' annotations
        coco["annotations"].append(
            {
                "id": ann_id,
                "image_id": image_id,
                "category_id": 2,
                "iscrowd": 0,
                "area": 9e4,
                "segmentation": [[10, 10, 500, 10, 500, 400, 10, 400]],
            }
        )
        crowd = np.zeros((520, 704), np.uint8, order="F")
        crowd[200:260, 300:380] = 1
        rle = mask_api.encode(crowd)
        rle["counts"] = rle["counts"].decode("ascii")
        ann_id += 1
        coco["annotations"].append(
            {
                "id": ann_id,
                "image_id": image_id,
                "category_id": 1,
                "iscrowd": 1,
                "area": 4800.0,
                "bbox": [300, 200, 80, 60],
                "segmentation": rle,
            }
        )
    return coco


def test_livecell_equals_torch_em(tmp_path, server):
    livecell = pytest.importorskip("torch_em.data.datasets.light_microscopy.livecell", reason=TORCH_EM)
    pytest.importorskip("pycocotools", reason="LIVECell needs pycocotools: pip install 'apgbench[datasets]'")
    import imageio.v3 as iio

    # Layout: images.zip unpacks to images/livecell_test_images/<file_name> (flat: micro-sam's
    # _get_livecell_paths globs images/livecell_test_images/<cell type>*, torch-em livecell.py:118-121 falls
    # back to it); the test annotations are the separate livecell_coco_test.json (torch-em livecell.py:33-41).
    rng = np.random.default_rng(3)
    names = [
        "A172_Phase_C7_1_00d00h00m_1.tif",
        "BV2_Phase_A4_2_02d04h00m_2.tif",
        "SkBr3_Phase_E3_1_00d12h00m_3.tif",
    ]
    images = tmp_path / "src" / "images" / "livecell_test_images"
    for name in names:
        write(images / name, rng.integers(0, 255, (520, 704), dtype=np.uint8))
    coco = _coco(rng, names)
    json_path = tmp_path / "livecell_coco_test.json"
    json_path.write_text(json.dumps(coco))
    config = published(
        "livecell",
        server,
        {"images.zip": zip_tree(tmp_path / "src", tmp_path / "i.zip"), "livecell_coco_test.json": json_path},
    )
    ours = _by_source(fetch_and_prepare(config, tmp_path / "data"))
    assert len(ours) == 3

    with _oracle():
        image_paths, seg_paths = livecell._create_segmentations_from_annotations(
            str(json_path), str(images), str(tmp_path / "seg"), None, "test"
        )
    for image_path, seg_path in zip(image_paths, seg_paths):
        sample = ours[Path(image_path).name]
        np.testing.assert_array_equal(sample.image, _centre_crop(iio.imread(image_path)))  # util.py:177-178
        np.testing.assert_array_equal(sample.labels, _centre_crop(iio.imread(seg_path)))
