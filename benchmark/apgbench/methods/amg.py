"""The automatic-mask-generator (AMG) code shared by ``amg`` (SAM) and ``sam2-amg`` (SAM 2.1).

Both libraries' generators take the same keywords and return records of the same structure; what differs is
how the model is built. :class:`AutoMaskGenerator` holds the rest: the generator's parameters, the paper's
label conversion (:func:`amg_records_to_labels`), ``_segment``, ``info`` and ``close``.
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .base import Segmenter, relabel_sequential
from .images import to_rgb_uint8
from .precision import DEFAULT_PRECISION, PRECISIONS, dtype_name, set_module_precision
from .weights import weights_info

#: The label conversion's parameters with the paper's values (see :func:`amg_records_to_labels`).
LABEL_DEFAULTS: dict[str, Any] = {"split_pieces": True, "drop_largest": True, "max_area_fraction": None}
#: The generator keywords both libraries take, passed on from the method's parameters.
GENERATOR_KEYS = (
    "points_per_side",
    "points_per_batch",
    "pred_iou_thresh",
    "stability_score_thresh",
    "box_nms_thresh",
)


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
    return {k: params[k] for k in LABEL_DEFAULTS}


def _bbox_window(bbox: Any, shape: tuple[int, int]) -> tuple[slice, slice]:
    """Slices covering an XYWH box (one pixel of slack: SAM's width is max - min), or the whole image."""
    if bbox is None:
        return slice(None), slice(None)
    x, y, w, h = (int(np.floor(v)) for v in bbox)
    return slice(max(y, 0), min(y + h + 2, shape[0])), slice(max(x, 0), min(x + w + 2, shape[1]))


class AutoMaskGenerator(Segmenter):
    """A SAM-family automatic mask generator: subclasses build ``self._generator`` in ``_prepare``.

    Subclasses set ``self._weights`` (the checkpoint loaded, None for random weights), call
    :meth:`_set_precision` on the model's encoder and mask decoder, and implement :meth:`_library` and
    :meth:`_model_label` for ``info()``. Their ``default_params`` include ``precision`` (``fp32``, the
    paper's; ``bf16`` and ``fp16`` via :mod:`apgbench.methods.precision`).
    """

    generator_keys: ClassVar[tuple[str, ...]] = GENERATOR_KEYS
    param_choices: ClassVar[dict[str, tuple[Any, ...]]] = {"precision": tuple(PRECISIONS)}
    _weights: Path | None = None

    def _generator_kwargs(self) -> dict[str, Any]:
        """The generator's keywords from the parameters, with binary masks as output."""
        return {**{key: self.params[key] for key in self.generator_keys}, "output_mode": "binary_mask"}

    def _segment(self, image: np.ndarray) -> np.ndarray:
        records = self._generator.generate(to_rgb_uint8(image))
        return amg_records_to_labels(records, image.shape[:2], **label_params(self.params))

    def _set_precision(self, modules: list, device: str) -> None:
        """Run ``modules`` (the image encoder and the mask decoder) in the ``precision`` parameter."""
        set_module_precision(modules, self.params.get("precision", DEFAULT_PRECISION), device)

    @abstractmethod
    def _library(self) -> str | None:
        """The installed library and its version, for ``info()``."""

    @abstractmethod
    def _model_label(self) -> str:
        """The model's name in ``info()`` (``sam_vit_b``)."""

    def info(self) -> dict[str, Any]:
        """Library install, model, weights file and hash, precision."""
        return {
            "library": self._library(),
            "model": self._model_label(),
            **weights_info(self._weights, self.params["random_weights"]),
            "precision": dtype_name(self.params.get("precision", DEFAULT_PRECISION)),
        }

    def close(self) -> None:
        """Drop the model."""
        self._generator = None


__all__ = ["GENERATOR_KEYS", "LABEL_DEFAULTS", "AutoMaskGenerator", "amg_records_to_labels", "label_params"]
