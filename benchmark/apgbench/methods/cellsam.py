"""``cellsam``: CellSAM (vanvalenlab/cellSAM), ``cellsam_pipeline(image, use_wsi=False)`` with the model loaded once.

CellSAM is installed from its repository at a pinned commit (``CELLSAM_COMMIT``; the package has no release
tags and its defaults change between commits); :meth:`CellSAM.info` records the installed commit, read
from pip's ``direct_url.json``.

``cellsam_pipeline`` builds the model on every call, so this wrapper builds it once in ``prepare``
(``get_model`` / ``get_local_model``, as the pipeline does) and per image runs the pipeline's
``use_wsi=False`` path: float32, the pipeline's channel-wise min-max ``normalize_image``, then
``segment_cellular_image(..., normalize=True)``. Weights are downloaded from users.deepcell.org and need a
DeepCell access token in ``DEEPCELL_ACCESS_TOKEN``; without a token or cached weights ``prepare`` says so.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from . import register_method
from .base import MethodUnavailableError, Segmenter
from .images import to_cellsam
from .meta import MethodMeta, one_model
from .weights import dist_version, seeded_torch, weights_info

CELLSAM_COMMIT = "35bc6e0da6616cf7530e52d0282ee17bb1a57429"  # 2025-11-11, model release v1.2
TOKEN_HELP = (
    "CellSAM's weights need a DeepCell access token: create one at https://users.deepcell.org and "
    "export DEEPCELL_ACCESS_TOKEN=<token> (or pass checkpoint=PATH to a downloaded .pt file)."
)


def cellsam_weights_path(model: str = "cellsam_general", version: str = "1.2") -> Path:
    """Where cellSAM's ``get_model`` keeps the weights: ``~/.deepcell/models/cellsam_v<version>/<model>.pt``."""
    return Path.home() / ".deepcell" / "models" / f"cellsam_v{version}" / f"{model}.pt"


def installed_commit() -> str | None:
    """The git commit cellSAM was installed from (pip's ``direct_url.json``), or None."""
    import importlib.metadata

    try:
        text = importlib.metadata.distribution("cellSAM").read_text("direct_url.json")
    except importlib.metadata.PackageNotFoundError:
        return None
    if not text:
        return None
    return json.loads(text).get("vcs_info", {}).get("commit_id")


def cellsam_to_labels(mask: Any, shape: tuple[int, int]) -> np.ndarray:
    """``segment_cellular_image``'s mask (int label image; a zero image when no cell is found) as uint32.

    Accepts ``(H, W)``, a singleton-batched ``(1, H, W)``, None, and the ``(3, H, W)`` zeros that
    ``segment_cellular_image`` returns when CellFinder finds no cell (it takes the shape of its
    channel-first tensor).
    """
    if mask is None:
        return np.zeros(shape, dtype=np.uint32)
    mask = np.asarray(mask)
    if mask.ndim == 3 and mask.shape[1:] == tuple(shape) and (mask.shape[0] == 1 or not mask.any()):
        mask = mask[0]
    if mask.shape != tuple(shape):
        raise ValueError(f"CellSAM returned a mask of shape {mask.shape}, expected {tuple(shape)}.")
    integer = mask.dtype == bool or np.issubdtype(mask.dtype, np.integer)
    if not integer and mask.size and not np.array_equal(mask, np.round(mask)):
        raise ValueError("CellSAM returned a non-integer mask.")
    if mask.size and mask.min() < 0:
        raise ValueError("CellSAM returned negative labels.")
    return mask.astype(np.uint32)


def weights_status() -> tuple[bool, str]:
    """Whether the weights are cached or a token to fetch them is set (no torch import)."""
    path = cellsam_weights_path(CellSAM.default_params["model"], CellSAM.default_params["version"])
    if path.is_file():
        return True, f"ready (weights {path})"
    if os.environ.get("DEEPCELL_ACCESS_TOKEN"):
        return True, f"ready; weights not cached, first run downloads them to {path.parent}"
    return False, "weights not cached and DEEPCELL_ACCESS_TOKEN not set. " + TOKEN_HELP


# The datasets in CellSAM's training data (the paper's Fig. 2 marks).
TRAINED_ON = frozenset(
    {
        "cellpose",
        "cryonuseg",
        "deepbacs",
        "dsb",
        "livecell",
        "monuseg",
        "nuinsseg",
        "omnipose",
        "pannuke",
        "tissuenet",
        "tnbc",
        "u20s",
        "yeaz",
    }
)


@register_method
class CellSAM(Segmenter):
    """CellSAM: CellFinder (AnchorDETR boxes) prompting SAM, no tiling (``use_wsi=False``).

    Parameters
    ----------
    model : {"cellsam_general", "cellsam_extra"}
        ``cellsam_general`` is the model of the CellSAM publication.
    version : str
        Model release (``"1.2"``).
    checkpoint : str or None
        A local ``.pt`` (``get_local_model``) instead of the token-gated download.
    bbox_threshold : float
        CellFinder's box confidence threshold (0.4, the pipeline's value).
    random_weights : bool
        **Testing only**: the real CellSAM network with random weights (no checkpoint).
    """

    meta = MethodMeta(
        name="cellsam",
        description="CellSAM (vanvalenlab, pinned commit), no tiling",
        extra="cellsam",
        requires=("torch", "cellSAM"),
        paper_row=("cellsam", "default"),
        table_order=40,
        trained_on=TRAINED_ON,
        models=one_model("cellsam_general"),
        default_model="cellsam_general",
        weights_status=weights_status,
    )
    default_params = {
        "model": "cellsam_general",
        "version": "1.2",
        "checkpoint": None,
        "bbox_threshold": 0.4,
        "random_weights": False,
    }

    def _prepare(self, device: str, domain: str | None) -> None:
        import torch
        from cellSAM import model as cellsam_model

        p = self.params
        if p["random_weights"]:
            import importlib.resources

            import yaml

            config = yaml.safe_load((importlib.resources.files("cellSAM") / "modelconfig.yaml").read_text())
            with seeded_torch():
                net = cellsam_model.CellSAM(config)
            self._weights = None
        elif p["checkpoint"] is not None:
            self._weights = Path(p["checkpoint"]).expanduser()
            if not self._weights.is_file():
                raise MethodUnavailableError(f"Method 'cellsam': checkpoint {self._weights} does not exist.")
            net = cellsam_model.get_local_model(str(self._weights))
        else:
            self._weights = cellsam_weights_path(p["model"], p["version"])
            if not self._weights.is_file() and not os.environ.get("DEEPCELL_ACCESS_TOKEN"):
                raise MethodUnavailableError(f"Method 'cellsam': no weights at {self._weights}. {TOKEN_HELP}")
            net = cellsam_model.get_model(model=p["model"], version=p["version"])
        net.bbox_threshold = p["bbox_threshold"]
        self._net = net.to(torch.device(device)).eval()

    def _segment(self, image: np.ndarray) -> np.ndarray:
        from cellSAM.cellsam_pipeline import normalize_image
        from cellSAM.model import segment_cellular_image

        x = normalize_image(to_cellsam(image))  # the pipeline's own channel-wise min-max, on float32
        mask = segment_cellular_image(
            x,
            model=self._net,
            normalize=True,
            device=self.device,
            bbox_threshold=self.params["bbox_threshold"],
        )[0]
        return cellsam_to_labels(mask, image.shape[:2])

    def info(self) -> dict[str, Any]:
        """CellSAM version and commit, model, weights file and hash, precision."""
        weights = getattr(self, "_weights", None)
        return {
            "library": f"cellSAM=={dist_version('cellSAM')}",
            "commit": installed_commit(),
            "pinned_commit": CELLSAM_COMMIT,
            "model": f"{self.params['model']} v{self.params['version']}",
            **weights_info(weights, self.params["random_weights"]),
            "precision": "float32",
        }

    def close(self) -> None:
        """Drop the model."""
        self._net = None
