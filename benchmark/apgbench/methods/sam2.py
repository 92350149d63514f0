"""``sam2-amg``: SAM 2.1 automatic mask generation (``SAM2AutomaticMaskGenerator``, Hiera base+ by default).

Two installs provide the ``sam2`` package: the official one from the facebookresearch/sam2 repository
(distribution ``SAM-2``) and the PyPI package ``sam2`` (a republication; a source build that compiles on a
CPU torch with ``SAM2_BUILD_CUDA=0``). Both work; :func:`sam2_install` says which is present and
``methods list`` and ``run.json`` record it.

SAM 2 builds its model through Hydra, and importing ``sam2`` initialises Hydra's process-wide
``GlobalHydra`` singleton. :func:`_sam2_hydra` confines that: Hydra's state is saved before the import and
the build and restored afterwards, so no other method (or a user's own Hydra app) sees SAM 2's config.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from . import register_method
from .amg import LABEL_DEFAULTS, AutoMaskGenerator
from .base import ParameterError
from .meta import MethodMeta, one_model
from .weights import dist_version, resolve_checkpoint, seeded_torch, weights_root

_URL = "https://dl.fbaipublicfiles.com/segment_anything_2/092824/"
# model name -> (Hydra config inside the sam2 package, official SAM 2.1 checkpoint file)
SAM2_MODELS = {
    "hiera_t": ("configs/sam2.1/sam2.1_hiera_t.yaml", "sam2.1_hiera_tiny.pt"),
    "hiera_s": ("configs/sam2.1/sam2.1_hiera_s.yaml", "sam2.1_hiera_small.pt"),
    "hiera_b+": ("configs/sam2.1/sam2.1_hiera_b+.yaml", "sam2.1_hiera_base_plus.pt"),
    "hiera_l": ("configs/sam2.1/sam2.1_hiera_l.yaml", "sam2.1_hiera_large.pt"),
}


def sam2_install() -> str | None:
    """``"official SAM-2 <version>"``, ``"PyPI sam2 <version>"`` or None when neither is installed."""
    official = dist_version("SAM-2")
    if official is not None:
        return f"official SAM-2 {official} (facebookresearch/sam2)"
    pypi = dist_version("sam2")
    return None if pypi is None else f"PyPI sam2 {pypi}"


def default_checkpoint(model: str = "hiera_b+") -> Path:
    """Where the official SAM 2.1 checkpoint of ``model`` is looked for."""
    return weights_root() / "sam2" / SAM2_MODELS[model][1]


def weights_status() -> tuple[bool, str]:
    """Which install is present and whether the default weights are cached (without importing torch)."""
    install = sam2_install() or "sam2"
    path = default_checkpoint()
    if path.is_file():
        return True, f"ready, {install} (weights {path})"
    return True, f"ready, {install}; weights not cached, first run downloads {_URL}{path.name} to {path}"


@contextmanager
def _sam2_hydra():
    """Run ``import sam2`` and model building with SAM 2's Hydra config, then restore Hydra's prior state."""
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.singleton import Singleton
    from hydra.initialize import get_gh_backup

    backup = get_gh_backup()
    try:
        GlobalHydra.instance().clear()
        import sam2  # noqa: F401 - its __init__ initialises Hydra on first import

        GlobalHydra.instance().clear()
        with initialize_config_module("sam2", version_base="1.2"):
            yield
    finally:
        if backup is None:
            Singleton._instances.pop(GlobalHydra, None)
        else:
            Singleton._instances[GlobalHydra] = backup


@register_method
class Sam2AMG(AutoMaskGenerator):
    """SAM 2.1 automatic mask generation.

    Parameters
    ----------
    model : {"hiera_t", "hiera_s", "hiera_b+", "hiera_l"}
        SAM 2.1 backbone; default base+.
    checkpoint : str or None
        Weights file; default ``$APGBENCH_WEIGHTS_DIR/sam2/<official name>``, downloaded when absent.
    points_per_side, points_per_batch, pred_iou_thresh, stability_score_thresh, box_nms_thresh
        Passed to ``SAM2AutomaticMaskGenerator`` (library defaults).
    split_pieces, drop_largest, max_area_fraction
        The label conversion, the same as ``amg``'s (:func:`apgbench.methods.amg.amg_records_to_labels`).
    precision : {"fp32", "bf16", "fp16"}
        Image encoder and mask decoder under autocast (:mod:`apgbench.methods.precision`); default fp32.
    random_weights : bool
        **Testing only**: the real architecture with random weights (no checkpoint), seeded.
    """

    meta = MethodMeta(
        name="sam2-amg",
        description="SAM 2.1 automatic mask generation (hiera base+)",
        extra="sam2",
        requires=("torch", "sam2", "hydra"),
        table_order=20,
        models=one_model("hiera_b+"),
        default_model="hiera_b+",
        weights_status=weights_status,
    )
    default_params = {
        "model": "hiera_b+",
        "checkpoint": None,
        "points_per_side": 32,
        "points_per_batch": 64,
        "pred_iou_thresh": 0.8,
        "stability_score_thresh": 0.95,
        "box_nms_thresh": 0.7,
        **LABEL_DEFAULTS,
        "precision": "fp32",
        "random_weights": False,
    }
    default_checkpoint = staticmethod(default_checkpoint)

    def _prepare(self, device: str, domain: str | None) -> None:
        model = self.params["model"]
        if model not in SAM2_MODELS:
            raise ParameterError(f"Unknown SAM 2 model '{model}'; expected one of {', '.join(SAM2_MODELS)}.")
        config, filename = SAM2_MODELS[model]
        self._weights = None
        if not self.params["random_weights"]:
            default = default_checkpoint(model)
            self._weights = resolve_checkpoint(self.params["checkpoint"], default, _URL + filename, self.name)
        with _sam2_hydra():
            from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator
            from sam2.build_sam import build_sam2

            with seeded_torch():  # random weights are seeded; loaded ones overwrite them
                net = build_sam2(
                    config, ckpt_path=None if self._weights is None else str(self._weights), device=device
                )
        self._set_precision([net.image_encoder, net.sam_mask_decoder], device)
        self._generator = SAM2AutomaticMaskGenerator(net, **self._generator_kwargs())

    def _library(self) -> str | None:
        return sam2_install()

    def _model_label(self) -> str:
        return f"sam2.1_{self.params['model']}"
