"""Vector annotations (COCO, XML, GeoJSON) and per-instance masks end to end, plus the overlap rule."""

from __future__ import annotations

import json

import numpy as np
import pytest

from apgbench.datasets import get_dataset_config, load_dataset
from apgbench.datasets.manage import import_dataset
from apgbench.datasets.readers.polygons import paint_annotations, rasterize

from ._helpers import fetch_and_prepare, published, write, zip_tree

pytestmark = pytest.mark.network


def _square(x0, y0, size):
    return [[x0, y0], [x0 + size, y0], [x0 + size, y0 + size], [x0, y0 + size]]


def _squares(n, step=12, size=8, offset=2):
    return [_square(offset + step * (i % 5), offset + step * (i // 5), size) for i in range(n)]


def test_overlap_rules():
    big, small = np.asarray(_square(0, 0, 10), float), np.asarray(_square(4, 4, 3), float)
    smaller_wins = rasterize([big, small], (16, 16))
    assert smaller_wins[5, 5] == 2 and smaller_wins[1, 1] == 1
    larger_wins = rasterize([big, small], (16, 16), overlap="larger-wins")
    assert 2 not in larger_wins  # fully covered by the larger object: dropped
    tiny = rasterize([np.asarray(_square(0, 0, 2), float)], (8, 8), min_area=50)
    assert not tiny.any()  # under min_area: dropped
    masks = [np.zeros((8, 8), bool), np.zeros((8, 8), bool)]
    masks[0][:6, :6], masks[1][4:, 4:] = True, True
    painted = paint_annotations(masks, (8, 8))
    assert painted[5, 5] in (1, 2) and (painted > 0).sum() == 36 + 16 - 4


def test_livecell_coco_with_separate_json(tmp_path, server):
    images = tmp_path / "src" / "images" / "livecell_test_images"
    coco = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "cell"}]}
    for i, name in enumerate(["A172_Phase_1.tif", "BV2_Phase_2.tif"]):
        write(images / name, np.full((520, 704), 100 + i, np.uint8))
        coco["images"].append({"id": i, "file_name": name, "height": 520, "width": 704})
        polys = [_square(300 + 30 * k, 250, 20) for k in range(6)] + [
            _square(301, 251, 5)
        ]  # last: tiny overlap
        for k, poly in enumerate(polys):
            coco["annotations"].append(
                {
                    "id": 100 * i + k,
                    "image_id": i,
                    "category_id": 1,
                    "iscrowd": 0,
                    "segmentation": [[v for xy in poly for v in xy]],
                    "area": 1.0,
                }
            )
    write(images.parent / "livecell_train_val_images" / "other.tif", np.zeros((4, 4), np.uint8))
    json_path = tmp_path / "livecell_coco_test.json"
    json_path.write_text(json.dumps(coco))
    config = published(
        "livecell",
        server,
        {"images.zip": zip_tree(tmp_path / "src", tmp_path / "i.zip"), "livecell_coco_test.json": json_path},
    )
    samples = fetch_and_prepare(config, tmp_path / "data")
    assert [s.image_id for s in samples] == ["A172_Phase_1", "BV2_Phase_2"]
    assert samples[0].image.shape == (512, 512)
    assert len(np.unique(samples[0].labels)) == 7  # the tiny duplicate is painted under and dropped


def test_monuseg_xml_polygons(tmp_path, server):
    folder = tmp_path / "src" / "MoNuSegTestData"
    write(folder / "TCGA-1.tif", np.full((560, 560, 3), 180, np.uint8))
    regions = "".join(
        f"<Region Id='{k}'><Vertices>"
        + "".join(f"<Vertex X='{x}' Y='{y}' Z='0'/>" for x, y in _square(60 + 40 * k, 250, 30))
        + "</Vertices></Region>"
        for k in range(8)
    )
    (folder / "TCGA-1.xml").write_text(
        f"<Annotations><Annotation><Regions>{regions}</Regions></Annotation></Annotations>"
    )
    config = published(
        "monuseg", server, {"monuseg_test.zip": zip_tree(tmp_path / "src", tmp_path / "m.zip")}
    )
    samples = fetch_and_prepare(config, tmp_path / "data")
    assert len(samples) == 1 and samples[0].image.shape == (512, 512, 3)
    assert len(np.unique(samples[0].labels)) == 8  # the paper's labels: region 0 is background


def test_hpa_geojson_resized(tmp_path, server):
    base = tmp_path / "hsrc" / "hpa_dataset_v2"
    for split in ("train", "test"):
        folder = base / split / f"{split}_001"
        write(folder / "protein.png", np.full((128, 128), 90, np.uint8))
        write(folder / "nuclei.png", np.zeros((128, 128), np.uint8))
        if split == "train":
            features = [
                {
                    "type": "Feature",
                    "geometry": {"type": "Polygon", "coordinates": [[*p, p[0]]]},
                    "properties": {},
                }
                for p in _squares(4, step=30, size=20)
            ]
            (folder / "annotation.json").write_text(
                json.dumps({"type": "FeatureCollection", "features": features})
            )
    config = published("hpa", server, {"hpa_dataset_v2.zip": zip_tree(tmp_path / "hsrc", tmp_path / "h.zip")})
    samples = fetch_and_prepare(config, tmp_path / "data")
    assert len(samples) == 1 and samples[0].image.shape == (512, 512)
    assert set(np.unique(samples[0].labels)) == {0, 1, 2, 3, 4}  # border pixels of 2-4 take lower ids (paper)


def test_segpc_per_instance_masks_in_nested_zip(tmp_path):
    inner = tmp_path / "inner" / "validation"
    for name in ("101", "102"):
        write(inner / "x" / f"{name}.bmp", np.full((40, 48, 3), 120, np.uint8))
        for k in range(5):
            mask = np.zeros((40, 48, 3), np.uint8)
            mask[2 + 7 * k : 7 + 7 * k, 5:20] = 20
            mask[3 + 7 * k : 5 + 7 * k, 8:12] = 40  # nucleus value inside the cell
            write(inner / "y" / f"{name}_{k + 1}.bmp", mask)
    outer = tmp_path / "outer" / "TCIA_SegPC_dataset"
    outer.mkdir(parents=True)
    zip_tree(tmp_path / "inner", outer / "validation.zip")
    (outer / "train.zip").write_bytes((outer / "validation.zip").read_bytes())
    archive = zip_tree(tmp_path / "outer", tmp_path / "TCIA_SegPC_dataset.zip")
    config = get_dataset_config("segpc")
    import_dataset(config, archive, tmp_path / "data")
    samples = list(load_dataset(config, tmp_path / "data"))
    assert len(samples) == 2 and len(np.unique(samples[0].labels)) == 6
    assert (samples[0].labels > 0).sum() == 5 * 5 * 15
