"""Label images from vector annotations exactly as the paper's preparation code made them.

The authors' test splits (micro-sam ``scripts/apg_experiments/util.py`` at 4f6d45e2) come from torch-em's
dataset loaders, and each loader rasterises its annotations in its own way. These functions reproduce the
result pixel for pixel (``tests/datasets/test_torchem_oracle_*.py`` compare them with torch-em itself);
they are selected by a reader's ``raster`` option. Where the authors' conversion loses or distorts objects,
the dataset offers a ``corrected`` variant that uses :func:`apgbench.datasets.readers.polygons.rasterize`
instead (``docs/fidelity.md`` lists every quirk).

- ``hpa_labels``: torch-em ``light_microscopy/hpa.py`` (``_load_features``, ``_generate_binary_masks``).
- ``monuseg_labels``: torch-em ``datasets/util.py`` ``generate_labeled_array_from_xml``.
- ``puma_labels``: torch-em ``histopathology/puma.py`` at e1f8a188, ``_preprocess_inputs`` (rasterio).
- ``livecell_labels``: torch-em ``light_microscopy/livecell.py`` ``_annotations_to_instances`` (pycocotools).
"""

from __future__ import annotations

import numpy as np

from ._base import ReaderError


def _require(module: str, extra: str = "datasets"):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ReaderError(
            f"Preparing this dataset needs '{module.split('.')[0]}': pip install 'apgbench[{extra}]'."
        ) from err


def hpa_labels(features: list, shape: tuple[int, int]) -> np.ndarray:
    """HPA cell labels as torch-em made them from the v2 GeoJSON (paper default).

    Only ``Polygon`` features become cells (``LineString`` ones only drew edges, other types are skipped).
    The annotation's y axis points up, so a vertex (x, y) fills row ``height - y``; pixels of a polygon that
    fall outside the image are moved onto the nearest border row or column; a polygon whose row and column
    lists both repeat earlier ones is skipped as a duplicate; later cells overwrite earlier ones. Ids count
    the drawn polygons from 1, stored as uint16.
    """
    from skimage.draw import polygon as fill

    rows_seen: list[np.ndarray] = []
    cols_seen: list[np.ndarray] = []
    labels = np.zeros(shape, np.uint16)
    next_id = 1
    for feature in features:
        geometry = feature.get("geometry") or {}
        coords = geometry.get("coordinates") or []
        if geometry.get("type") != "Polygon" or not coords or len(coords[0]) == 0:
            continue
        ring = np.squeeze(np.asarray(coords, dtype=float))
        rr, cc = fill(shape[0] - ring[:, 1], ring[:, 0])
        rr, cc = np.clip(rr, 0, shape[0] - 1), np.clip(cc, 0, shape[1] - 1)
        if any(np.array_equal(rr, r) for r in rows_seen) and any(np.array_equal(cc, c) for c in cols_seen):
            continue
        rows_seen.append(rr)
        cols_seen.append(cc)
        labels[rr, cc] = next_id
        next_id += 1
    return labels


def monuseg_labels(regions: list[np.ndarray], shape: tuple[int, int], first_id: int = 0) -> np.ndarray:
    """MoNuSeg labels as torch-em made them from the XML.

    Vertices are truncated to int32, region ``i`` (document order) is painted with value ``first_id + i``,
    later regions overwrite earlier ones. The paper's torch-em (up to at least 0.10.3) counted from 0, so
    each image's first nucleus became background (``first_id=0``, the default); torch-em 0.10.9 counts from 1.
    """
    from skimage.draw import polygon as fill

    labels = np.zeros(shape, np.uint32)
    for index, vertices in enumerate(regions):
        if len(vertices) == 0:  # torch-em would stop with an error here; nothing to draw
            continue
        vertices = np.asarray(vertices, dtype=float).astype(np.int32)
        rr, cc = fill(vertices[:, 1], vertices[:, 0], shape=shape)
        labels[rr, cc] = index + first_id
    return labels


def _bounds(geometries: list[dict]) -> tuple[float, float, float, float]:
    points = []

    def walk(item):
        if isinstance(item, (list, tuple)) and item and isinstance(item[0], (int, float)):
            points.append(item[:2])
        elif isinstance(item, (list, tuple)):
            for child in item:
                walk(child)

    for geometry in geometries:
        walk(geometry.get("coordinates"))
    if not points:
        raise ReaderError("The annotation file holds no coordinates.")
    xy = np.asarray(points, dtype=float)
    return float(xy[:, 0].min()), float(xy[:, 1].min()), float(xy[:, 0].max()), float(xy[:, 1].max())


def puma_labels(
    features: list, grid: tuple[int, int] = (1024, 1024), bounds: str = "annotations"
) -> np.ndarray:
    """PUMA nucleus labels rasterised with rasterio, as torch-em e1f8a188 did (paper default).

    Parameters
    ----------
    features : list of GeoJSON features
        Feature ``k`` (1-based, file order) gets id ``k``; later features overwrite earlier ones.
    grid : (int, int)
        Output (rows, cols): the ROI size, 1024 x 1024 in PUMA.
    bounds : {"annotations", "image"}
        ``annotations`` (paper): the bounding box of all annotation coordinates is stretched onto the grid,
        then flipped upside down, so objects shift and scale by the margin between the outermost nuclei and
        the ROI border. ``image`` (corrected): coordinates are pixel positions (x = column, y = row).
    """
    features_ = _require("rasterio.features")
    transforms = _require("rasterio.transform")
    shapes = [((f.get("geometry")), k) for k, f in enumerate(features, start=1) if f.get("geometry")]
    out = np.zeros(grid, np.int32)
    if not shapes:
        return out
    if bounds == "annotations":
        transform = transforms.from_bounds(*_bounds([g for g, _ in shapes]), grid[1], grid[0])
    elif bounds == "image":
        transform = transforms.Affine.identity()
    else:
        raise ReaderError(f"Unknown PUMA bounds '{bounds}' (annotations or image).")
    out = features_.rasterize(shapes, out_shape=grid, transform=transform, fill=0, dtype=np.int32)
    return np.ascontiguousarray(out[::-1]) if bounds == "annotations" else out


def livecell_labels(annotations: list[dict], shape: tuple[int, int], min_size: int = 50) -> np.ndarray:
    """LIVECell labels as torch-em made them from the COCO JSON (paper default).

    Masks come from pycocotools (polygons and RLE alike, as ``COCO.annToMask``), are painted in the order of
    ``np.argsort`` of their COCO ``area`` (crowd annotations count as area 1), so larger objects win
    overlaps; ids with fewer than ``min_size`` pixels are removed and the rest renumbered 1..N (uint16).
    """
    mask_api = _require("pycocotools.mask")
    from skimage.segmentation import relabel_sequential

    height, width = shape
    sizes = [a.get("area", 0) if a.get("iscrowd", 0) == 0 else 1 for a in annotations]
    labels = np.zeros(shape, np.uint32)
    for label_id, index in enumerate(np.argsort(sizes), start=1):
        segmentation = annotations[index]["segmentation"]
        if isinstance(segmentation, list):
            rle = mask_api.merge(mask_api.frPyObjects(segmentation, height, width))
        elif isinstance(segmentation.get("counts"), list):
            rle = mask_api.frPyObjects(segmentation, height, width)
        else:
            rle = segmentation
        labels[mask_api.decode(rle).astype(bool)] = label_id
    ids, counts = np.unique(labels, return_counts=True)
    labels[np.isin(labels, ids[counts < min_size])] = 0
    return relabel_sequential(labels)[0].astype(np.uint16)
