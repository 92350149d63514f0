"""``cellpose-sam`` (cellpose >= 4, model ``cpsam``) and ``cellpose3`` (cellpose 3.x, model ``cyto3``).

cellpose 3 and 4 cannot share an environment (same import name, different APIs). ``cellpose-sam`` runs in
the main environment; ``cellpose3`` runs in a second virtualenv made by ``scripts/install_cellpose3_env.sh``
(``--system-site-packages``, so apgbench and torch are shared and only cellpose differs). Both write into the
same results root, so one ``apgbench report`` shows them side by side. Each class checks the installed major
version in ``prepare`` and says which environment to use.

Facts handled here: cellpose 4.2's default model is ``cpsam_v2`` and an unknown name silently falls back to
it, so ``cpsam`` (the paper's model) is passed explicitly; ``use_bfloat16=True`` (the library default) is
about 3x faster than float32 on CPUs with bf16 and is recorded as the precision.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from . import register_method
from .base import MethodUnavailableError, ParameterError, Segmenter
from .images import to_float, to_grey
from .meta import MethodMeta, one_model
from .weights import SAM_DISTRIBUTIONS, dist_version, owning_distribution, seeded_torch, weights_info


def cellpose_model_dir() -> Path:
    """Cellpose's own weights cache: ``$CELLPOSE_LOCAL_MODELS_PATH`` or ``~/.cellpose/models``."""
    env = os.environ.get("CELLPOSE_LOCAL_MODELS_PATH")
    return Path(env) if env else Path.home() / ".cellpose" / "models"


def cellpose_major() -> int | None:
    """Major version of the installed cellpose, or None."""
    version = dist_version("cellpose")
    return None if version is None else int(version.split(".")[0])


def cellpose_masks_to_labels(masks: Any, shape: tuple[int, int]) -> np.ndarray:
    """Cellpose's ``masks`` output (uint16 or uint32 label image; empty list/None when nothing) as uint32."""
    if masks is None or (isinstance(masks, (list, tuple)) and len(masks) == 0):
        return np.zeros(shape, dtype=np.uint32)
    masks = np.asarray(masks)
    if masks.ndim == 3 and masks.shape[0] == 1:
        masks = masks[0]
    if masks.shape != tuple(shape):
        raise ValueError(f"cellpose returned masks of shape {masks.shape}, expected {tuple(shape)}.")
    if masks.size and masks.min() < 0:
        raise ValueError("cellpose returned negative labels.")
    return masks.astype(np.uint32)


def _cache_status(path: Path) -> tuple[bool, str]:
    if path.is_file():
        return True, f"ready (weights {path})"
    return True, f"ready; weights not cached, cellpose downloads {path.name} to {path} on first run"


def cpsam_status() -> tuple[bool, str]:
    """Whether ``cpsam`` is in cellpose's cache, and the environment's cellpose major version."""
    if (cellpose_major() or 4) < 4:
        return False, f"cellpose {dist_version('cellpose')} here; cellpose-sam needs cellpose >= 4"
    return _cache_status(cellpose_model_dir() / CellposeSAM.default_params["pretrained_model"])


def cyto3_status() -> tuple[bool, str]:
    """Whether this environment has cellpose 3 and ``cyto3`` is cached."""
    if (cellpose_major() or 3) >= 4:
        return False, (
            f"cellpose {dist_version('cellpose')} here; cellpose3 runs in its own environment "
            "(scripts/install_cellpose3_env.sh)"
        )
    return _cache_status(cellpose_model_dir() / Cellpose3.default_params["model_type"])


# The datasets in the training data of Cellpose 3's cyto3 and of Cellpose-SAM (the paper's Fig. 2 marks).
CYTO3_TRAINED_ON = frozenset(
    {"cellpose", "deepbacs", "dsb", "livecell", "omnipose", "tissuenet", "u20s", "yeaz"}
)
CPSAM_TRAINED_ON = CYTO3_TRAINED_ON | {
    "cryonuseg",
    "ihc-tma",
    "lynsec",
    "monuseg",
    "nuinsseg",
    "pannuke",
    "tnbc",
}


class _CellposeBase(Segmenter):
    major: int = 4

    def _check_version(self) -> None:
        major = cellpose_major()
        if major is not None and (major >= 4) != (self.major >= 4):
            if self.major >= 4:
                hint = f"this environment has cellpose {dist_version('cellpose')}; run it from the main one"
            else:
                hint = (
                    f"this environment has cellpose {dist_version('cellpose')}; make the cellpose 3 environment "
                    "with scripts/install_cellpose3_env.sh and run apgbench from it"
                )
            raise MethodUnavailableError(f"Method '{self.name}' needs cellpose {self.major}.x: {hint}.")

    def _weights_info(self) -> dict[str, Any]:
        return {
            "library": f"cellpose=={dist_version('cellpose')}",
            **weights_info(getattr(self, "_weights", None), self.params["random_weights"]),
        }

    def close(self) -> None:
        """Drop the model."""
        self._model = None

    @classmethod
    def volume_mode(cls, params=None) -> str:
        from .cellpose3d import volume_mode

        return super().volume_mode(params) if (params or {}).get("stitch") else volume_mode(params)


@register_method
class CellposeSAM(_CellposeBase):
    """Cellpose-SAM: ``CellposeModel(pretrained_model="cpsam").eval(image, diameter=None)``.

    Parameters
    ----------
    pretrained_model : str
        Built-in name or path; ``cpsam`` is the paper's model (passed explicitly, see the module notes).
    use_bfloat16 : bool
        bf16 weights (library default); ``False`` runs float32.
    diameter : float or None
        None: no rescaling, as Cellpose-SAM is meant to be run.
    flow_threshold, cellprob_threshold, batch_size
        Passed to ``eval``.
    random_weights : bool
        **Testing only**: the real CPSAM network with random weights (no checkpoint), seeded.
    """

    meta = MethodMeta(
        name="cellpose-sam",
        description="Cellpose-SAM (cellpose >= 4, model cpsam)",
        extra="cellpose",
        requires=("torch", "cellpose"),
        paper_row=("cellpose-sam", "cpsam"),
        table_order=60,
        trained_on=CPSAM_TRAINED_ON,
        models=one_model("cpsam"),
        supports_3d="native",  # cellpose's do_3D, or its stitching with stitch_threshold > 0 (cellpose3d.py)
        default_model="cpsam",
        weights_status=cpsam_status,
    )
    major = 4
    default_params = {
        "pretrained_model": "cpsam",
        "use_bfloat16": True,
        "diameter": None,
        "flow_threshold": 0.4,
        "cellprob_threshold": 0.0,
        "batch_size": 8,
        "random_weights": False,
        "stitch_threshold": 0.0,  # volumes only: 0 = cellpose's do_3D, > 0 = its slice stitching
    }

    def _prepare(self, device: str, domain: str | None) -> None:
        self._check_version()
        import torch
        from cellpose import models

        p = self.params
        dtype = torch.bfloat16 if p["use_bfloat16"] else torch.float32
        torch_device = torch.device(device)
        if p["random_weights"]:
            # CellposeModel.__init__ always loads a checkpoint; set the attributes it would set around a
            # seeded, untrained CPSAM network so that eval() runs the real pre/post-processing.
            from cellpose.vit import CPSAM

            model = models.CellposeModel.__new__(models.CellposeModel)
            with seeded_torch():
                net = CPSAM(dtype=dtype).to(dtype)  # as CPSAM.load_model casts after loading
            model.device, model.gpu, model.backbone = torch_device, torch_device.type == "cuda", "sam_vitl"
            model.pretrained_model, model.net = None, net.to(torch_device).eval()
            self._weights = None
        else:
            name = p["pretrained_model"]
            known = set(models.MODEL_NAMES) | set(models.get_user_models())
            if not os.path.exists(name) and name not in known:
                # cellpose would silently fall back to its default model; refuse instead.
                raise ParameterError(
                    f"Unknown cellpose model '{name}'; built-in names: {', '.join(sorted(known))}."
                )
            try:
                model = models.CellposeModel(
                    pretrained_model=name, device=torch_device, use_bfloat16=p["use_bfloat16"]
                )
            except OSError as err:
                raise MethodUnavailableError(
                    f"Method '{self.name}' could not load or download the weights '{name}' into "
                    f"{cellpose_model_dir()} ({err}); place the file there or set CELLPOSE_LOCAL_MODELS_PATH."
                ) from err
            self._weights = model.pretrained_model
        self._model = model

    def _segment(self, image: np.ndarray) -> np.ndarray:
        p = self.params
        # A copy: cellpose normalises float32 input in place (transforms.normalize_img), the caller's image too.
        x = np.array(to_float(image))  # channels last, as every image here
        masks, _, _ = self._model.eval(
            x,
            channel_axis=-1 if x.ndim == 3 else None,
            diameter=p["diameter"],
            flow_threshold=p["flow_threshold"],
            cellprob_threshold=p["cellprob_threshold"],
            batch_size=p["batch_size"],
        )
        return cellpose_masks_to_labels(masks, image.shape[:2])

    def _segment_volume(self, volume: np.ndarray, spacing) -> np.ndarray:
        from .cellpose3d import masks_to_volume, volume_eval_kwargs

        p, x = self.params, np.array(to_float(volume))  # a copy: cellpose normalises float32 input in place
        masks, _, _ = self._model.eval(
            x,
            diameter=p["diameter"],
            flow_threshold=p["flow_threshold"],
            cellprob_threshold=p["cellprob_threshold"],
            batch_size=p["batch_size"],
            **volume_eval_kwargs(p, spacing, -1 if x.ndim == 4 else None),
        )
        return masks_to_volume(masks, volume.shape[:3])

    def info(self) -> dict[str, Any]:
        """Cellpose version, model, weights, precision, and which segment_anything is on disk."""
        return {
            **self._weights_info(),
            "model": self.params["pretrained_model"],
            "precision": "bfloat16" if self.params["use_bfloat16"] else "float32",
            "segment_anything": owning_distribution("segment_anything", "predictor.py", SAM_DISTRIBUTIONS),
        }


@register_method
class Cellpose3(_CellposeBase):
    """Cellpose 3 (``cyto3``), grey input (``channels=[0, 0]``), diameter 30 as in the paper.

    Runs only where cellpose 3.x is installed: see ``scripts/install_cellpose3_env.sh``.

    Parameters
    ----------
    model_type : str
        Built-in model (``cyto3``).
    diameter : float
        Object diameter in pixels (the paper's 30).
    flow_threshold, cellprob_threshold
        Passed to ``eval``.
    random_weights : bool
        **Testing only**: the real CPnet with random weights (no checkpoint).
    """

    meta = MethodMeta(
        name="cellpose3",
        description="Cellpose 3 (cyto3), runs in its own environment",
        extra="cellpose3",
        requires=("torch", "cellpose"),
        paper_row=("cellpose3", "cyto3"),
        table_order=50,
        trained_on=CYTO3_TRAINED_ON,
        models=one_model("cyto3"),
        supports_3d="native",
        default_model="cyto3",
        weights_status=cyto3_status,
    )
    major = 3
    default_params = {
        "model_type": "cyto3",
        "diameter": 30.0,
        "flow_threshold": 0.4,
        "cellprob_threshold": 0.0,
        "random_weights": False,
        "stitch_threshold": 0.0,  # volumes only: 0 = cellpose's do_3D, > 0 = its slice stitching
    }

    def _prepare(self, device: str, domain: str | None) -> None:
        self._check_version()
        import torch
        from cellpose import models

        p = self.params
        torch_device = torch.device(device)
        if p["random_weights"]:
            # cellpose 3 builds an untrained CPnet when given neither a model nor a model type.
            with seeded_torch():
                model = models.CellposeModel(pretrained_model=False, model_type=None, device=torch_device)
            self._weights = None
        else:
            known = set(models.MODEL_NAMES) | set(models.get_user_models())
            if p["model_type"] not in known and not os.path.exists(p["model_type"]):
                # cellpose would warn and fall back to its default model; refuse instead.
                raise ParameterError(
                    f"Unknown cellpose 3 model '{p['model_type']}'; built-in: {', '.join(sorted(known))}."
                )
            try:
                model = models.CellposeModel(model_type=p["model_type"], device=torch_device)
            except OSError as err:
                raise MethodUnavailableError(
                    f"Method '{self.name}' could not load or download '{p['model_type']}' into "
                    f"{cellpose_model_dir()} ({err}); place the file there or set CELLPOSE_LOCAL_MODELS_PATH."
                ) from err
            self._weights = model.pretrained_model
        self._model = model

    def _segment(self, image: np.ndarray) -> np.ndarray:
        p = self.params
        masks, _, _ = self._model.eval(
            np.array(to_grey(image)),  # a copy: cellpose may normalise its input in place
            channels=[0, 0],
            diameter=p["diameter"],
            flow_threshold=p["flow_threshold"],
            cellprob_threshold=p["cellprob_threshold"],
        )
        return cellpose_masks_to_labels(masks, image.shape[:2])

    def _segment_volume(self, volume: np.ndarray, spacing) -> np.ndarray:
        from .cellpose3d import masks_to_volume, volume_eval_kwargs

        p = self.params
        x = np.asarray(volume, np.float32)
        x = x.mean(axis=-1) if x.ndim == 4 else x  # grey, as channels=[0, 0] in 2D
        masks, _, _ = self._model.eval(
            x,
            channels=[0, 0],
            diameter=p["diameter"],
            flow_threshold=p["flow_threshold"],
            cellprob_threshold=p["cellprob_threshold"],
            **volume_eval_kwargs(p, spacing, None),
        )
        return masks_to_volume(masks, volume.shape[:3])

    def info(self) -> dict[str, Any]:
        """Cellpose version, model, weights, precision."""
        return {**self._weights_info(), "model": self.params["model_type"], "precision": "float32"}
