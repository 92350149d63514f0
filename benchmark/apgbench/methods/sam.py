"""``amg``: Segment Anything's automatic mask generator (SAM ViT-B by default), as the paper's SAM baseline.

The library is the ``segment_anything`` package. Two distributions write it: ``segment-anything`` (Meta's,
pulled in by cellpose 4) and ``segment-anything-py`` (a fork with small fixes, pulled in by micro-sam);
whichever is installed last wins. apgbench's install reinstalls ``segment-anything-py`` last, and
:meth:`SamAMG.info` records which one is on disk.

The generator's parameters, the label conversion and ``info`` are shared with ``sam2-amg`` (:mod:`.amg`).
"""

from __future__ import annotations

from pathlib import Path

from . import register_method
from .amg import LABEL_DEFAULTS, AutoMaskGenerator
from .base import ParameterError
from .meta import MethodMeta, one_model
from .weights import SAM_DISTRIBUTIONS, owning_distribution, resolve_checkpoint, seeded_torch, weights_root

_URL = "https://dl.fbaipublicfiles.com/segment_anything/"
SAM_CHECKPOINTS = {
    "vit_b": "sam_vit_b_01ec64.pth",
    "vit_l": "sam_vit_l_0b3195.pth",
    "vit_h": "sam_vit_h_4b8939.pth",
}


def default_checkpoint(model: str = "vit_b") -> Path:
    """Where the official checkpoint of ``model`` is looked for."""
    return weights_root() / "segment_anything" / SAM_CHECKPOINTS[model]


def weights_status() -> tuple[bool, str]:
    """Whether the default weights are cached (without importing torch)."""
    path = default_checkpoint()
    if path.is_file():
        return True, f"ready (weights {path})"
    return True, f"ready; weights not cached, first run downloads {_URL}{path.name} to {path}"


@register_method
class SamAMG(AutoMaskGenerator):
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
        The label conversion (:func:`~apgbench.methods.amg.amg_records_to_labels`); the defaults are the paper's.
    precision : {"fp32", "bf16", "fp16"}
        Image encoder and mask decoder under autocast (:mod:`apgbench.methods.precision`); fp32 is the paper's.
    random_weights : bool
        **Testing only**: build the real architecture with random weights (no checkpoint), seeded, so the
        whole library path runs on machines without weights. Results are meaningless.
    """

    meta = MethodMeta(
        name="amg",
        description="SAM automatic mask generation (segment-anything, ViT-B)",
        extra="sam",
        requires=("torch", "segment_anything"),
        paper_row=("amg", "sam vit_b"),
        table_order=10,
        models=one_model("vit_b"),
        default_model="vit_b",
        weights_status=weights_status,
    )
    default_params = {
        "model": "vit_b",
        "checkpoint": None,
        "points_per_side": 32,
        "points_per_batch": 64,
        "pred_iou_thresh": 0.88,
        "stability_score_thresh": 0.95,
        "box_nms_thresh": 0.7,
        "min_mask_region_area": 0,
        **LABEL_DEFAULTS,
        "precision": "fp32",
        "random_weights": False,
    }
    generator_keys = (*AutoMaskGenerator.generator_keys, "min_mask_region_area")
    default_checkpoint = staticmethod(default_checkpoint)

    def _prepare(self, device: str, domain: str | None) -> None:
        import torch
        from segment_anything import SamAutomaticMaskGenerator, sam_model_registry

        model = self.params["model"]
        if model not in SAM_CHECKPOINTS:
            raise ParameterError(
                f"Unknown SAM model '{model}'; expected one of {', '.join(SAM_CHECKPOINTS)}."
            )
        self._weights = None
        if self.params["random_weights"]:
            with seeded_torch():
                sam = sam_model_registry[model](checkpoint=None)
        else:
            default = default_checkpoint(model)
            self._weights = resolve_checkpoint(
                self.params["checkpoint"], default, _URL + default.name, self.name
            )
            sam = sam_model_registry[model](checkpoint=str(self._weights))
        sam.to(torch.device(device)).eval()
        self._set_precision([sam.image_encoder, sam.mask_decoder], device)
        self._generator = SamAutomaticMaskGenerator(sam, **self._generator_kwargs())

    def _library(self) -> str | None:
        return owning_distribution("segment_anything", "predictor.py", SAM_DISTRIBUTIONS)

    def _model_label(self) -> str:
        return f"sam_{self.params['model']}"


__all__ = ["SAM_CHECKPOINTS", "SamAMG", "default_checkpoint"]
