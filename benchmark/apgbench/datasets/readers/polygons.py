"""Readers for vector annotations (COCO JSON, MoNuSeg XML, GeoJSON) and per-instance mask files.

Overlap rule
------------
By default (``overlap: smaller-wins``) polygons and per-instance masks are painted in order of *decreasing*
area, so where two objects overlap the *smaller* one keeps the shared pixels (a small object drawn under a
large one would vanish). ``overlap: larger-wins`` paints in increasing area instead (torch-em's LIVECell
order, there by the COCO ``area`` field: ``raster: torch-em``). Ties keep the input order. An object left with
no pixel of its own is dropped; ``min_area`` then drops objects with fewer pixels. Coordinates are
(x, y) = (column, row) with pixel centres at integer
positions; a polygon covers the pixels whose centres lie inside it (``skimage.draw.polygon``).

The paper's labels
------------------
The readers' ``raster`` option selects how labels are drawn: ``polygons`` (the rule above) or the way the
paper's data came out of torch-em (``torch-em`` for COCO and XML, ``hpa``/``puma`` for GeoJSON; see
:mod:`.paper_raster`). Dataset configs choose the paper's rasterisation by default.
"""

from __future__ import annotations

import glob
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from . import paper_raster, register_reader
from ._base import Entry, ReaderError, check_pair, entry_id, find_base, read_array, sorted_glob


def rasterize(
    objects: list, shape: tuple[int, int], overlap: str = "smaller-wins", min_area: int = 0
) -> np.ndarray:
    """Instance label image from filled polygons (arrays of (x, y) vertices), smaller objects on top.

    Parameters
    ----------
    objects : list of (N, 2) arrays, or list of lists of them
        One entry per object; an object may consist of several polygons (MultiPolygon), which get one id.
    shape : (int, int)
        Output (rows, cols).
    overlap : {"smaller-wins", "larger-wins"}
        Which object keeps pixels claimed by several (see module docstring).
    min_area : int
        Objects with fewer visible pixels are removed.

    Returns
    -------
    numpy.ndarray
        uint32 labels, objects numbered 1..N in input order (ids of dropped objects stay unused).
    """
    from skimage.draw import polygon as fill

    masks: list[tuple[int, int, np.ndarray, np.ndarray]] = []
    for index, obj in enumerate(objects, start=1):
        parts = obj if isinstance(obj, list) else [obj]
        rows, cols = [], []
        for part in parts:
            part = np.asarray(part, dtype=float).reshape(-1, 2)
            if len(part) < 3:
                continue
            rr, cc = fill(part[:, 1], part[:, 0], shape)
            rows.append(rr)
            cols.append(cc)
        if rows:
            rr, cc = np.concatenate(rows), np.concatenate(cols)
            masks.append((len(rr), index, rr, cc))
    labels = np.zeros(shape, np.uint32)
    for _, index, rr, cc in sorted(masks, key=_order_key(overlap)):
        labels[rr, cc] = index
    return _drop_small(labels, min_area)


def _check_raster(raster: str, known: tuple[str, ...]) -> None:
    if raster not in known:
        raise ReaderError(f"Unknown raster option '{raster}' (one of {', '.join(known)}).")


def _order_key(overlap: str):
    if overlap not in ("smaller-wins", "larger-wins"):
        raise ReaderError(f"Unknown overlap rule '{overlap}' (smaller-wins or larger-wins).")
    sign = -1 if overlap == "smaller-wins" else 1
    return lambda m: sign * m[0]


def _drop_small(labels: np.ndarray, min_area: int) -> np.ndarray:
    if min_area > 0 and labels.any():
        ids, counts = np.unique(labels, return_counts=True)
        labels[np.isin(labels, ids[(counts < min_area) & (ids > 0)])] = 0
    return labels


def paint_annotations(
    masks: list[np.ndarray], shape: tuple[int, ...], overlap: str = "smaller-wins"
) -> np.ndarray:
    """Instance labels from boolean masks with the same overlap rule as :func:`rasterize`."""
    labels = np.zeros(shape, np.uint32)
    items = [(int(m.sum()), i + 1, m) for i, m in enumerate(masks)]
    for _, index, mask in sorted(items, key=_order_key(overlap)):
        labels[mask] = index
    return labels


def _coco_polygons(annotation: dict) -> list[np.ndarray]:
    seg = annotation.get("segmentation")
    if isinstance(seg, list):
        return [np.asarray(p, float).reshape(-1, 2) for p in seg if len(p) >= 6]
    raise ReaderError("COCO annotations with RLE masks are not supported (polygons expected).")


@register_reader("coco")
def read_coco(
    root: Path,
    *,
    annotations: str,
    images: str,
    base: str | None = None,
    overlap: str = "smaller-wins",
    min_area: int = 0,
    raster: str = "polygons",
    category: str | None = None,
) -> list[Entry]:
    """COCO instance annotations (LIVECell): one JSON with ``images`` and polygon ``annotations``.

    ``images`` is a folder (relative to ``base``) in which each image's ``file_name`` is looked up.
    ``raster: torch-em`` draws with pycocotools in COCO ``area`` order (:func:`.paper_raster.livecell_labels`,
    ``min_area`` then is its minimum size); ``category`` keeps only annotations of that category name.
    """
    _check_raster(raster, ("polygons", "torch-em"))
    folder = find_base(root, base)
    json_files = sorted_glob(folder, annotations)
    if len(json_files) != 1:
        raise ReaderError(f"Expected one annotation file matching '{annotations}', found {len(json_files)}.")
    try:
        coco = json.loads(json_files[0].read_text(encoding="utf-8"))
        by_image: dict[int, list[dict]] = {}
        # as pycocotools' getAnnIds(catIds=getCatIds(catNms=[category])): no such category means no filter
        wanted = {c["id"] for c in coco.get("categories", []) if c.get("name") == category}
        for ann in coco["annotations"]:
            if wanted and ann.get("category_id") not in wanted:
                continue
            by_image.setdefault(ann["image_id"], []).append(ann)
        records = sorted(coco["images"], key=lambda r: r["file_name"])
    except (ValueError, KeyError, TypeError) as err:
        raise ReaderError(f"{json_files[0].name} is not a COCO annotation file: {err}") from err
    image_dir = find_base(folder, images)
    entries = []
    for record in records:
        name = Path(record["file_name"]).name
        path = image_dir / name

        def load(record=record, path=path, name=name):
            image = read_array(path)
            shape = (int(record["height"]), int(record["width"]))
            if raster == "torch-em":
                labels = paper_raster.livecell_labels(by_image.get(record["id"], []), shape, min_area)
            else:
                objects = [_coco_polygons(a) for a in by_image.get(record["id"], [])]
                labels = rasterize([o for o in objects if o], shape, overlap, min_area)
            check_pair(image, labels, name)
            return image, labels

        entries.append(Entry(id=entry_id(name), key=Path(name).stem, load=load, meta={"source": name}))
    return entries


def _xml_regions(path: Path) -> list[np.ndarray]:
    try:
        tree = ET.parse(path)
    except ET.ParseError as err:
        raise ReaderError(f"Cannot parse {path.name}: {err}") from err
    try:  # every region in document order, as minidom's getElementsByTagName (torch-em) lists them
        return [
            np.asarray(
                [(float(v.get("X")), float(v.get("Y"))) for v in region.iter("Vertex")], float
            ).reshape(-1, 2)
            for region in tree.iter("Region")
        ]
    except (TypeError, ValueError) as err:
        raise ReaderError(f"{path.name} has a vertex without numeric X and Y: {err}") from err


@register_reader("xml-polygons")
def read_xml_polygons(
    root: Path,
    *,
    images: str,
    annotation_sub: list[str],
    base: str | None = None,
    overlap: str = "smaller-wins",
    raster: str = "polygons",
    first_id: int = 0,
) -> list[Entry]:
    """Images with Aperio/MoNuSeg-style XML annotations (``Region``/``Vertex X= Y=``); the XML path comes
    from the image path by the regex substitution ``annotation_sub``. ``raster: torch-em`` draws as torch-em
    (:func:`.paper_raster.monuseg_labels` with ``first_id``); ``polygons`` draws every region with 3+ vertices
    as an object.
    """
    _check_raster(raster, ("polygons", "torch-em"))
    folder = find_base(root, base)
    paths = sorted_glob(folder, images)
    if not paths:
        raise ReaderError(f"No images match '{images}' under {folder}: wrong or incomplete data.")
    entries = []
    for path in paths:
        relative = path.relative_to(folder).as_posix()
        xml_path = folder / re.sub(annotation_sub[0], annotation_sub[1], relative)
        if not xml_path.is_file():
            raise ReaderError(f"No annotation file for image '{relative}' (looked for {xml_path.name}).")

        def load(path=path, xml_path=xml_path):
            image = read_array(path)
            regions = _xml_regions(xml_path)
            if raster == "torch-em":
                return image, paper_raster.monuseg_labels(regions, image.shape[:2], first_id)
            return image, rasterize([r for r in regions if len(r) >= 3], image.shape[:2], overlap)

        entries.append(Entry(id=entry_id(relative), key=path.stem, load=load, meta={"source": relative}))
    return entries


def _geojson_features(path: Path) -> list[dict]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise ReaderError(f"Cannot parse {path.name}: {err}") from err
    features = data["features"] if isinstance(data, dict) and "features" in data else data
    return [f for f in features if isinstance(f, dict)] if isinstance(features, list) else []


def _geojson_objects(features: list[dict]) -> list[list[np.ndarray]]:
    objects = []
    for feature in features:
        geometry = feature.get("geometry") or {}
        kind, coords = geometry.get("type"), geometry.get("coordinates") or []
        if kind == "Polygon" and coords:
            objects.append([np.asarray(coords[0], float)[:, :2]])  # outer ring; holes are filled
        elif kind == "MultiPolygon" and coords:
            objects.append([np.asarray(poly[0], float)[:, :2] for poly in coords if poly])
    return objects


@register_reader("geojson")
def read_geojson(
    root: Path,
    *,
    annotations: str,
    image_sub: list[str],
    base: str | None = None,
    overlap: str = "smaller-wins",
    group: str | None = None,
    raster: str = "polygons",
    grid: list[int] | None = None,
    bounds: str = "annotations",
) -> list[Entry]:
    """GeoJSON polygon annotations (HPA, PUMA), one file per image; the image path comes from the annotation
    path by the regex substitution ``image_sub``. ``raster``: ``polygons`` (holes filled), ``hpa`` or
    ``puma`` (the paper's, :mod:`.paper_raster`; ``grid`` and ``bounds`` are passed to ``puma_labels``).
    """
    _check_raster(raster, ("polygons", "hpa", "puma"))
    folder = find_base(root, base)
    paths = sorted_glob(folder, annotations)
    if not paths:
        raise ReaderError(
            f"No annotation files match '{annotations}' under {folder}: wrong or incomplete data."
        )
    entries = []
    for path in paths:
        relative = path.relative_to(folder).as_posix()
        image_rel = re.sub(image_sub[0], image_sub[1], relative)
        image_path = folder / image_rel

        def load(path=path, image_path=image_path):
            if not image_path.is_file():
                raise ReaderError(
                    f"No image file for annotation '{path.name}' (looked for {image_path.name})."
                )
            image, features = read_array(image_path), _geojson_features(path)
            if raster == "hpa":
                return image, paper_raster.hpa_labels(features, image.shape[:2])
            if raster == "puma":
                return image, paper_raster.puma_labels(features, tuple(grid or image.shape[:2]), bounds)
            return image, rasterize(_geojson_objects(features), image.shape[:2], overlap)

        match = re.search(group, relative) if group else None
        entries.append(
            Entry(
                id=entry_id(image_rel),
                key=Path(image_rel).stem,
                load=load,
                group=match.group(match.lastindex or 0) if match else "",
                meta={"source": image_rel, "annotation": relative},
            )
        )
    return entries


@register_reader("instance-mask-files")
def read_instance_mask_files(
    root: Path,
    *,
    images: str,
    masks_sub: list[str],
    base: str | None = None,
    mask_value: int | None = None,
    overlap: str = "smaller-wins",
    mask_order: str = "natural",
) -> list[Entry]:
    """One mask file per object (SegPC): ``masks_sub`` turns an image path into a glob of its mask files.

    A pixel belongs to an object where its mask is non-zero, or equals ``mask_value`` if given.
    ``overlap: last-wins`` paints the masks in ``mask_order`` (``natural``, or ``listing``: the unsorted
    order of Python's ``glob``, as torch-em's SegPC conversion), each over the earlier ones.
    """
    folder = find_base(root, base)
    paths = sorted_glob(folder, images)
    if not paths:
        raise ReaderError(f"No images match '{images}' under {folder}: wrong or incomplete data.")
    entries = []
    for path in paths:
        relative = path.relative_to(folder).as_posix()
        mask_glob = re.sub(masks_sub[0], masks_sub[1], relative)

        def load(path=path, mask_glob=mask_glob, relative=relative):
            image = read_array(path)
            masks = []
            if mask_order == "listing":  # filesystem order, exactly what torch-em's unsorted glob sees
                mask_paths = [Path(p) for p in glob.glob(f"{glob.escape(str(folder))}/{mask_glob}")]
            else:
                mask_paths = sorted_glob(folder, mask_glob)
            for mask_path in mask_paths:
                mask = read_array(mask_path)
                mask = mask[..., 0] if mask.ndim == 3 else mask
                masks.append(mask == mask_value if mask_value is not None else mask > 0)
                check_pair(image, masks[-1], f"{relative} / {mask_path.name}")
            if overlap == "last-wins":
                labels = np.zeros(image.shape[:2], np.uint32)
                for index, mask in enumerate(masks, start=1):
                    labels[mask] = index
                return image, labels
            return image, paint_annotations(masks, image.shape[:2], overlap)

        entries.append(Entry(id=entry_id(relative), key=path.stem, load=load, meta={"source": relative}))
    return entries
