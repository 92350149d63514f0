"""``amg``: Segment Anything's automatic mask generator (SAM ViT-B by default), as the paper's SAM baseline.

The library is the ``segment_anything`` package. Two distributions write it: ``segment-anything`` (Meta's,
pulled in by cellpose 4) and ``segment-anything-py`` (a fork with small fixes, pulled in by micro-sam);
whichever is installed last wins. apgbench's install reinstalls ``segment-anything-py`` last, and
:meth:`SamAMG.info` records which one is on disk.

The conversion :func:`amg_records_to_labels` is shared with ``sam2-amg``, whose generator returns records
of the same structure.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from . import register_method
from .base import ParameterError, Segmenter, relabel_sequential
from .preprocess import (
    SAM_DISTRIBUTIONS,
    owning_distribution,
    resolve_checkpoint,
    to_rgb_uint8,
    weights_root,
    weights_sha256,
)

_URL = "https://dl.fbaipublicfiles.com/segment_anything/"
SAM_CHECKPOINTS = {
    "vit_b": "sam_vit_b_01ec64.pth",
    "vit_l": "sam_vit_l_0b3195.pth",
    "vit_h": "sam_vit_h_4b8939.pth",
}


def amg_records_to_labels(
    records: list[dict[str, Any]],
    shape: tuple[int, int],
    *,
    split_pieces: bool = True,
    drop_largest: bool = True,
    max_area_fraction: float | None = None,
) -> np.ndarray:
    """Paint automatic-mask-generator records into a label image, as the paper's code did.

    The default is micro-sam's ``mask_data_to_segmentation(masks, with_background=True)`` at 4f6d45e2
    (instance_segmentation.py:50-117, called at automatic_segmentation.py:255): masks are painted largest
    first, a later (smaller) mask overwriting an earlier one; the painted labels are split into their
    8-connected pieces (``skimage.measure.label``); the single largest segment, background included, is
    removed (so nothing is removed when the background is largest); ids are made consecutive.

    Parameters
    ----------
    records : list of dict
        The generator's output (``output_mode="binary_mask"``): each record has ``segmentation`` (bool
        array of ``shape``) and usually ``area`` and ``bbox`` (XYWH, as SAM and SAM 2 write it).
    shape : tuple of int
        ``(H, W)`` of the image.
    split_pieces : bool
        Split painted labels into 8-connected pieces (the paper's code).
    drop_largest : bool
        Remove the largest segment, background included (the paper's ``with_background=True``).
    max_area_fraction : float or None
        Not the paper's: drop masks covering more than this fraction of the image before painting (apgbench's
        earlier background rule, 0.5; use with ``split_pieces=False, drop_largest=False`` to restore it).

    Returns
    -------
    labels : ndarray of uint32
        Ids 1..N in raster order of the pieces (hidden masks leave no id).
    """
    import skimage as ski

    shape = (int(shape[0]), int(shape[1]))
    limit = np.inf if max_area_fraction is None else max_area_fraction * shape[0] * shape[1]
    kept = []
    for record in records:
        mask = record["segmentation"]
        if np.shape(mask) != shape:
            raise ValueError(f"A mask of shape {np.shape(mask)} does not match the image shape {shape}.")
        area = record.get("area")
        area = int(np.count_nonzero(mask)) if area is None else int(area)
        if area <= limit:
            kept.append((area, record))
    kept.sort(key=lambda item: -item[0])  # stable: equal areas keep the generator's order (as sorted())
    labels = np.zeros(shape, dtype=np.uint32)
    for index, (_, record) in enumerate(kept, start=1):
        window = _bbox_window(record.get("bbox"), shape)
        mask = np.asarray(record["segmentation"], dtype=bool)[window]
        labels[window][mask] = index
    if split_pieces:
        labels = ski.measure.label(labels, connectivity=2).astype(np.uint32)
    if drop_largest and kept:
        ids, sizes = np.unique(labels, return_counts=True)
        largest = ids[np.argmax(sizes)]  # ties: the lowest id, as np.argmax
        if largest != 0:
            labels[labels == largest] = 0
    return relabel_sequential(labels)


def label_params(params: dict[str, Any]) -> dict[str, Any]:
    """The :func:`amg_records_to_labels` keywords among a method's parameters."""
    return {k: params[k] for k in ("split_pieces", "drop_largest", "max_area_fraction")}


def _bbox_window(bbox: Any, shape: tuple[int, int]) -> tuple[slice, slice]:
    """Slices covering an XYWH box (one pixel of slack: SAM's width is max - min), or the whole image."""
    if bbox is None:
        return slice(None), slice(None)
    x, y, w, h = (int(np.floor(v)) for v in bbox)
    return slice(max(y, 0), min(y + h + 2, shape[0])), slice(max(x, 0), min(x + w + 2, shape[1]))


@register_method
class SamAMG(Segmenter):
    """SAM automatic mask generation (``SamAutomaticMaskGenerator``).

    Parameters
    ----------
    model : {"vit_b", "vit_l", "vit_h"}
        SAM backbone; the paper's baseline is ``vit_b``.
    checkpoint : str or None
        Weights file; default ``$APGBENCH_WEIGHTS_DIR/segment_anything/<official name>``, downloaded from
        Meta's server when absent.
    points_per_side, points_per_batch, pred_iou_thresh, stability_score_thresh, box_nms_thresh,
    min_mask_region_area
        Passed to the generator (library defaults).
    split_pieces, drop_largest, max_area_fraction
        The label conversion (:func:`amg_records_to_labels`); the defaults are the paper's.
    random_weights : bool
        **Testing only**: build the real architecture with random weights (no checkpoint), seeded, so the
        whole library path runs on machines without weights. Results are meaningless.
    """

    name = "amg"
    requires = ("torch", "segment_anything")
    extra = "sam"
    description = "SAM automatic mask generation (segment-anything, ViT-B)"
    default_params = {
        "model": "vit_b",
        "checkpoint": None,
        "points_per_side": 32,
        "points_per_batch": 64,
        "pred_iou_thresh": 0.88,
        "stability_score_thresh": 0.95,
        "box_nms_thresh": 0.7,
        "min_mask_region_area": 0,
        "split_pieces": True,
        "drop_largest": True,
        "max_area_fraction": None,
        "random_weights": False,
    }

    @classmethod
    def default_checkpoint(cls, model: str = "vit_b") -> Path:
        """Where the official checkpoint of ``model`` is looked for."""
        return weights_root() / "segment_anything" / SAM_CHECKPOINTS[model]

    @classmethod
    def weights_status(cls) -> tuple[bool, str]:
        """Whether the default weights are cached (without importing torch)."""
        path = cls.default_checkpoint()
        if path.is_file():
            return True, f"ready (weights {path})"
        return True, f"ready; weights not cached, first run downloads {_URL}{path.name} to {path}"

    def _model_key(self, domain: str | None) -> object:
        return None  # one model for every domain: loaded once per run, whatever the datasets

    def _prepare(self, device: str, domain: str | None) -> None:
        import torch
        from segment_anything import SamAutomaticMaskGenerator, sam_model_registry

        model = self.params["model"]
        if model not in SAM_CHECKPOINTS:
            raise ParameterError(f"Unknown SAM model '{model}'; expected one of {', '.join(SAM_CHECKPOINTS)}.")
        self._weights: Path | None = None
        if self.params["random_weights"]:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                sam = sam_model_registry[model](checkpoint=None)
        else:
            default = self.default_checkpoint(model)
            self._weights = resolve_checkpoint(
                self.params["checkpoint"], default, _URL + default.name, self.name
            )
            sam = sam_model_registry[model](checkpoint=str(self._weights))
        sam.to(torch.device(device)).eval()
        p = self.params
        self._generator = SamAutomaticMaskGenerator(
            sam,
            points_per_side=p["points_per_side"],
            points_per_batch=p["points_per_batch"],
            pred_iou_thresh=p["pred_iou_thresh"],
            stability_score_thresh=p["stability_score_thresh"],
            box_nms_thresh=p["box_nms_thresh"],
            min_mask_region_area=p["min_mask_region_area"],
            output_mode="binary_mask",
        )

    def _segment(self, image: np.ndarray) -> np.ndarray:
        records = self._generator.generate(to_rgb_uint8(image))
        return amg_records_to_labels(records, image.shape[:2], **label_params(self.params))

    def info(self) -> dict[str, Any]:
        """Library distribution actually on disk, model, weights file and hash, precision."""
        weights = getattr(self, "_weights", None)
        return {
            "library": owning_distribution("segment_anything", "predictor.py", SAM_DISTRIBUTIONS),
            "model": f"sam_{self.params['model']}",
            "weights": "random (testing only)" if self.params["random_weights"] else str(weights),
            "weights_sha256": weights_sha256(weights),
            "precision": "float32",
        }

    def close(self) -> None:
        """Drop the model."""
        self._generator = None


__all__ = ["SAM_CHECKPOINTS", "SamAMG", "amg_records_to_labels", "label_params"]
