"""``instanseg``: InstanSeg (``instanseg-torch``) with its pretrained models, one per domain.

Not a method of the paper: its rows in reports have no paper column. What an InstanSeg user does, done here:

- **Model per domain**, from InstanSeg's model table (``docs/inference.md``): ``single_channel_nuclei``
  ("single-channel fluorescence, nuclei") for ``nuclei-fluo``; ``fluorescence_nuclei_and_cells``
  ("fluorescence and multiplexed, any number of channels, nuclei and cells") for ``cells-fluo``;
  ``brightfield_nuclei`` ("brightfield, e.g. H&E, nuclei") for ``nuclei-histo``. InstanSeg has no model for
  label-free cells, so ``cells-labelfree`` gets ``fluorescence_nuclei_and_cells`` with the cell output, as a
  user without a better choice would run it (``info()`` records the model).
- **Output**: nuclei+cells models are asked for ``target="nuclei"`` on nuclei domains and ``"cells"`` on
  cell domains (the dataset's labels).
- **Inference** as ``InstanSeg.eval`` does for an image array: ``eval_small_image`` below the library's
  ``small_image_threshold`` pixels (3 x 1500 x 1500, channels counted), else ``eval_medium_image`` (512-pixel
  tiles, objects merged across tiles); the library's percentile normalisation (0.1-99.9 per channel).
  ``pixel_size=None`` is the library default for arrays: no rescaling to the model's 0.5 um/px (datasets here
  carry no pixel size); pass ``pixel_size`` to rescale as InstanSeg does.
- **Weights** through ``instanseg.utils.utils.download_model`` (TorchScript ``instanseg.pt`` under
  ``$INSTANSEG_BIOIMAGEIO_PATH/<model>/<version>/``, default the package's ``bioimageio_models`` folder).
  Offline, ``prepare`` names the URL and the folder; ``checkpoint`` loads a local ``instanseg.pt`` instead.

InstanSeg ships TorchScript only. ``random_weights`` (testing only) builds the network with InstanSeg's own
training code path (``build_model_from_dict`` with ``train.py``'s default architecture, its pixel classifier,
the channel-invariant adaptor for the fluorescence model) and scripts it with the export wrapper
``InstanSeg_Torchscript`` that produced the released files; the released models' exact layer widths are not
published in the package, so those are ``train.py``'s defaults. torch is imported in ``_prepare``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from . import register_method
from .base import MethodUnavailableError, ParameterError, Segmenter
from .images import to_float
from .meta import MethodMeta
from .weights import dist_version, seeded_torch, weights_info

MODELS = {
    "nuclei-fluo": "single_channel_nuclei",
    "cells-fluo": "fluorescence_nuclei_and_cells",
    "cells-labelfree": "fluorescence_nuclei_and_cells",
    "nuclei-histo": "brightfield_nuclei",
}
DEFAULT_MODEL = "fluorescence_nuclei_and_cells"
# Input channels per released model: None = channel invariant (any number).
MODEL_CHANNELS = {"single_channel_nuclei": 1, "brightfield_nuclei": 3, "fluorescence_nuclei_and_cells": None}
# train.py's default architecture plus what each released model predicts, for ``random_weights``.
_ARCH = {
    "model_str": "InstanSeg_UNet",
    "layers": (32, 64, 128, 256),
    "n_sigma": 2,
    "dim_coords": 2,
    "dim_seeds": 1,
    "norm": "BATCH",
    "dropprob": 0.0,
    "multihead": False,
    "feature_engineering": "0",
}
_RANDOM = {  # (backbone input channels, nuclei and cells, channel invariant)
    "single_channel_nuclei": (1, False, False),
    "brightfield_nuclei": (3, False, False),
    "fluorescence_nuclei_and_cells": (3, True, True),
}


def instanseg_model_for(domain: str | None) -> str:
    """The pretrained InstanSeg model a user would pick for ``domain``."""
    return MODELS.get(domain or "", DEFAULT_MODEL)


def target_for(domain: str | None) -> str:
    """Which output of a nuclei+cells model matches the dataset's labels."""
    return "nuclei" if (domain or "").startswith("nuclei") else "cells"


def model_index() -> dict[str, dict[str, str]]:
    """InstanSeg's model index (name -> url, version) read from the installed package without importing it."""
    spec = importlib.util.find_spec("instanseg")
    if spec is None or not spec.submodule_search_locations:
        return {}
    path = Path(next(iter(spec.submodule_search_locations))) / "bioimageio_models" / "model-index.json"
    index: dict[str, dict[str, str]] = {}
    for entry in json.loads(path.read_text()) if path.is_file() else []:
        index.setdefault(entry["name"], entry)  # download_model takes the first entry of a name
    return index


def instanseg_weights_path(name: str) -> Path | None:
    """Where ``download_model(name)`` keeps ``instanseg.pt``; None if the model or the package is unknown."""
    entry = model_index().get(name)
    spec = importlib.util.find_spec("instanseg")
    if entry is None or spec is None or not spec.submodule_search_locations:
        return None
    root = os.environ.get("INSTANSEG_BIOIMAGEIO_PATH") or (
        Path(next(iter(spec.submodule_search_locations))) / "bioimageio_models"
    )
    return Path(root) / entry["name"] / entry["version"] / "instanseg.pt"


def instanseg_input(image: np.ndarray, n_channels: int | None) -> np.ndarray:
    """Float32 channels-first ``(C, H, W)`` for a model taking ``n_channels`` (None: any).

    One-channel models get grey as is, the nucleus channel of a two-channel (whole-cell, nucleus) image, or
    the mean of RGB; RGB models get grey repeated and two channels plus an empty third; channel-invariant
    models get every channel. Channels first, where InstanSeg's guess of the channel axis (the smallest one)
    finds them in any image wider and taller than its channel count.
    """
    image = to_float(image)
    x = image[None] if image.ndim == 2 else np.moveaxis(image, -1, 0)
    if n_channels == 1 and x.shape[0] > 1:
        x = x[1:2] if x.shape[0] == 2 else x.mean(axis=0, keepdims=True)
    elif n_channels == 3 and x.shape[0] < 3:
        x = np.repeat(x, 3, axis=0) if x.shape[0] == 1 else np.concatenate([x, np.zeros_like(x[:1])], axis=0)
    return np.ascontiguousarray(x)


def instances_to_labels(instances: Any, shape: tuple[int, int]) -> np.ndarray:
    """InstanSeg's ``(1, 1, H, W)`` float label tensor as a uint32 ``(H, W)`` image."""
    if hasattr(instances, "detach"):
        instances = instances.detach().cpu().numpy()
    labels = np.asarray(instances)
    while labels.ndim > 2 and labels.shape[0] == 1:
        labels = labels[0]
    if labels.shape != tuple(shape):
        raise ValueError(f"InstanSeg returned labels of shape {labels.shape}, expected {tuple(shape)}.")
    if labels.size and (labels.min() < 0 or not np.array_equal(labels, np.round(labels))):
        raise ValueError("InstanSeg returned labels that are not non-negative integers.")
    return labels.astype(np.uint32)


def random_instanseg(name: str):
    """**Testing only**: the scripted InstanSeg network for ``name`` with seeded random weights."""
    import torch
    from instanseg.utils.loss.instanseg_loss import InstanSeg as InstanSegLoss
    from instanseg.utils.loss.instanseg_loss import InstanSeg_Torchscript
    from instanseg.utils.model_loader import build_model_from_dict
    from instanseg.utils.models.ChannelInvariantNet import AdaptorNetWrapper

    dim_in, both, invariant = _RANDOM[name]
    with seeded_torch():
        net = build_model_from_dict({**_ARCH, "dim_in": dim_in, "cells_and_nuclei": both})
        loss = InstanSegLoss(n_sigma=2, cells_and_nuclei=both, device="cpu", feature_engineering_function="0")
        net = loss.initialize_pixel_classifier(net, MLP_width=5)  # train.py's --mlp_width default
        if invariant:
            net = AdaptorNetWrapper(net, adaptor_net_str="1", norm="BATCH")
        net.eval()
        wrapped = InstanSeg_Torchscript(
            net,
            cells_and_nuclei=both,
            pixel_size=0.5,
            n_sigma=2,
            feature_engineering_function="0",
            backbone_dim_in=dim_in,
        )
    return torch.jit.script(wrapped)


def weights_status() -> tuple[bool, str]:
    """Whether the default model's ``instanseg.pt`` is cached (no torch import)."""
    path = instanseg_weights_path(DEFAULT_MODEL)
    if path is not None and path.is_file():
        return True, f"ready (weights {path})"
    return True, f"ready; {DEFAULT_MODEL} not cached in {path and path.parent}, the first run downloads it"


@register_method
class InstanSeg(Segmenter):
    """InstanSeg, pretrained models by domain, the library's array inference and normalisation.

    Parameters
    ----------
    model : str or None
        A model of InstanSeg's index; None picks by domain (see the module notes).
    checkpoint : str or None
        A local TorchScript ``instanseg.pt`` used instead of the download.
    target : {"nuclei", "cells"} or None
        Output of nuclei+cells models; None picks by domain.
    pixel_size : float or None
        The images' pixel size in um; None (library default for arrays) segments at the native scale.
    processing : {"auto", "small", "medium"}
        ``auto`` chooses as ``InstanSeg.eval``: whole image below ``small_image_threshold`` pixels, else tiles.
    tile_size, batch_size : int
        ``eval_medium_image``'s tiling (512, 1: the library defaults).
    random_weights : bool
        **Testing only**: the InstanSeg network with seeded random weights (no download).
    """

    meta = MethodMeta(
        name="instanseg",
        description="InstanSeg (fluorescence / brightfield models by domain), not in the paper",
        extra="instanseg",
        requires=("torch", "instanseg"),
        models=MODELS,
        default_model=DEFAULT_MODEL,
        weights_status=weights_status,
    )
    default_params = {
        "model": None,
        "checkpoint": None,
        "target": None,
        "pixel_size": None,
        "processing": "auto",
        "tile_size": 512,
        "batch_size": 1,
        "random_weights": False,
    }

    def model_name(self, domain: str | None = None) -> str:
        """The model for ``domain`` (the prepared domain by default), or the one named in the parameters."""
        return self.params["model"] or instanseg_model_for(domain if domain is not None else self.domain)

    def _model_key(self, domain: str | None) -> object:
        if domain is None and not self.params["model"]:
            raise ParameterError(
                f"Method '{self.name}' picks its model by domain: give the dataset a domain (--domain) "
                "or pass model=NAME."
            )
        return super()._model_key(domain)

    def _prepare(self, device: str, domain: str | None) -> None:
        import torch
        from instanseg import InstanSeg as InstanSegRunner

        p, name = self.params, self.model_name(domain)
        if p["processing"] not in ("auto", "small", "medium"):
            raise ParameterError(
                f"InstanSeg processing must be auto, small or medium, not '{p['processing']}'."
            )
        if p["random_weights"]:
            net, self._weights = random_instanseg(name), None
        elif p["checkpoint"]:
            if not Path(p["checkpoint"]).is_file():
                raise MethodUnavailableError(f"InstanSeg checkpoint {p['checkpoint']} does not exist.")
            net, self._weights = torch.jit.load(p["checkpoint"], map_location="cpu"), Path(p["checkpoint"])
        else:
            net, self._weights = self._download(name), instanseg_weights_path(name)
        self._model = InstanSegRunner(net, device=device, verbosity=0)
        self._name = name
        self._channels = MODEL_CHANNELS.get(name) if not p["checkpoint"] else None

    def _download(self, name: str):
        from instanseg.utils.utils import download_model

        entry = model_index().get(name)
        if entry is None:
            raise ParameterError(f"Unknown InstanSeg model '{name}'; known: {', '.join(model_index())}.")
        try:
            return download_model(name, verbose=False)
        except Exception as error:
            path = instanseg_weights_path(name)
            raise MethodUnavailableError(
                f"InstanSeg model '{name}' is not in {path.parent} and could not be downloaded from "
                f"{entry['url']} ({type(error).__name__}); unzip it there (or set INSTANSEG_BIOIMAGEIO_PATH), "
                "or pass checkpoint=PATH to its instanseg.pt."
            ) from None

    def _segment(self, image: np.ndarray) -> np.ndarray:
        p = self.params
        x = instanseg_input(image, self._channels)
        method = p["processing"]
        if method == "auto":  # InstanSeg.eval's rule, on the array it would have read
            method = "small" if x.size < self._model.small_image_threshold else "medium"
        target = p["target"] or target_for(self.domain)
        with warnings.catch_warnings():  # pixel_size=None is chosen on purpose (module notes)
            warnings.filterwarnings("ignore", message="Pixel size not provided")
            if method == "small":
                out = self._model.eval_small_image(
                    x, pixel_size=p["pixel_size"], return_image_tensor=False, target=target
                )
            else:
                out = self._model.eval_medium_image(
                    x,
                    pixel_size=p["pixel_size"],
                    return_image_tensor=False,
                    target=target,
                    tile_size=p["tile_size"],
                    batch_size=p["batch_size"],
                )
        return instances_to_labels(out, image.shape[:2])

    def close(self) -> None:
        """Drop the model."""
        self._model = None

    def info(self) -> dict[str, Any]:
        """Instanseg version, model and its release, weights file and hash, output target."""
        name = getattr(self, "_name", self.model_name())
        path = getattr(self, "_weights", None)
        return {
            "library": f"instanseg-torch=={dist_version('instanseg-torch')}",
            "model": name,
            "model_version": model_index().get(name, {}).get("version"),
            **weights_info(path, self.params["random_weights"]),
            "target": self.params["target"] or target_for(self.domain),
            "pixel_size": self.params["pixel_size"],
        }
