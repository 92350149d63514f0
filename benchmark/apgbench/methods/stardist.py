"""``stardist``: StarDist 2D (TensorFlow) with its pretrained versatile models, one per domain.

Not a method of the paper: its rows in reports have no paper column. What a StarDist user does, done here:

- **Model per domain**: ``2D_versatile_he`` (H&E, RGB input) for ``nuclei-histo``, ``2D_versatile_fluo``
  (grey input) for every other domain. StarDist ships no model for label-free cells, so label-free data get
  the fluorescence model, as a user without a better choice would run it (``info()`` records the model).
- **Preprocessing** as StarDist's prediction notebook (``examples/2D/3_prediction.ipynb``):
  ``csbdeep.utils.normalize(img, 1, 99.8, axis=(0, 1))``, percentiles per channel.
- **Inference**: ``model.predict_instances(img)`` with the thresholds shipped with the model
  (``thresholds.json``) and no tiling (``n_tiles=None``), the library's defaults.
- **Weights** through ``StarDist2D.from_pretrained`` (keras ``get_file``: hash-checked zip under
  ``$KERAS_HOME/models/StarDist2D/<name>/``, ``~/.keras`` by default). Offline, ``prepare`` names the URL and
  the folder; ``model_dir`` points at a local model folder (``config.json`` + ``weights_best.h5``) instead.

Channels: the fluorescence model takes one channel, so a two-channel (whole-cell, nucleus) image gives it
its nucleus channel (StarDist segments nuclei) and an RGB image its channel mean; the H&E model takes RGB, so
grey is repeated and a two-channel image gets an empty third channel. TensorFlow is imported in ``_prepare``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..config import DOMAINS
from . import register_method
from .base import MethodUnavailableError, ParameterError, Segmenter
from .images import to_float
from .meta import MethodMeta
from .weights import RANDOM_WEIGHTS, dist_version

MODELS = {"nuclei-histo": "2D_versatile_he"}
DEFAULT_MODEL = "2D_versatile_fluo"
# The URLs stardist 0.9.2 registers (stardist/models/__init__.py:19-20), for the offline message.
MODEL_URLS = {
    "2D_versatile_fluo": "https://github.com/stardist/stardist-models/releases/download/v0.1/python_2D_versatile_fluo.zip",
    "2D_versatile_he": "https://github.com/stardist/stardist-models/releases/download/v0.1/python_2D_versatile_he.zip",
}
# The versatile models' architecture (for ``random_weights``): 32 rays on a 2x2 grid, Config2D's U-Net.
VERSATILE_CONFIG = {"n_rays": 32, "grid": (2, 2)}


def stardist_model_for(domain: str | None) -> str:
    """The pretrained StarDist model a user would pick for ``domain``."""
    return MODELS.get(domain or "", DEFAULT_MODEL)


def keras_model_folder(name: str) -> Path:
    """Where ``StarDist2D.from_pretrained(name)`` caches the model: ``$KERAS_HOME/models/StarDist2D/<name>``."""
    home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras").expanduser()
    return home / "models" / "StarDist2D" / name


def stardist_input(image: np.ndarray, n_channels: int) -> np.ndarray:
    """Float32 ``(H, W)`` for a one-channel model or ``(H, W, 3)`` for an RGB model (see module notes)."""
    image = to_float(image)
    if n_channels == 1:
        if image.ndim == 2:
            return image
        return image[..., 1] if image.shape[-1] == 2 else image.mean(axis=-1)
    if n_channels != 3:
        raise ValueError(f"StarDist models with {n_channels} input channels are not supported.")
    if image.ndim == 2:
        return np.repeat(image[..., None], 3, axis=-1)
    if image.shape[-1] == 2:
        return np.concatenate([image, np.zeros((*image.shape[:2], 1), np.float32)], axis=-1)
    return image


def normalize_input(image: np.ndarray, pmin: float, pmax: float, joint: bool) -> np.ndarray:
    """Csbdeep's percentile normalisation, per channel (``axis=(0, 1)``) unless ``joint``."""
    from csbdeep.utils import normalize

    return normalize(image, pmin, pmax, axis=None if joint or image.ndim == 2 else (0, 1))


def weights_status() -> tuple[bool, str]:
    """Whether the fluorescence model is in keras' cache (no TensorFlow import)."""
    folder = keras_model_folder(DEFAULT_MODEL)
    if (folder / f"{DEFAULT_MODEL}.zip").is_file():
        return True, f"ready (weights in {folder})"
    return True, f"ready; {DEFAULT_MODEL} not cached in {folder}, the first run downloads it"


@register_method
class StarDist(Segmenter):
    """StarDist 2D, versatile pretrained models, the library's preprocessing and thresholds.

    Parameters
    ----------
    model : str or None
        A registered StarDist2D model; None picks by domain (``2D_versatile_he`` for histopathology,
        ``2D_versatile_fluo`` otherwise).
    model_dir : str or None
        A local model folder (``config.json``, ``thresholds.json``, weights) used instead of the download.
    pmin, pmax : float
        Normalisation percentiles (1, 99.8 as in StarDist's example notebooks).
    normalize_jointly : bool
        Normalise all channels together instead of per channel (the notebooks' commented alternative).
    prob_thresh, nms_thresh : float or None
        None: the thresholds optimised for and shipped with the model.
    n_tiles : list of int or None
        Tiles per axis for ``predict_instances`` (None: the whole image at once, the library default).
    random_weights : bool
        **Testing only**: the versatile architecture with seeded random weights (no download).
    """

    meta = MethodMeta(
        name="stardist",
        description="StarDist 2D (versatile_fluo / versatile_he by domain), not in the paper",
        extra="stardist",
        requires=("tensorflow", "stardist", "csbdeep"),
        models={domain: stardist_model_for(domain) for domain in DOMAINS},
        default_model=DEFAULT_MODEL,
        weights_status=weights_status,
    )
    default_params = {
        "model": None,
        "model_dir": None,
        "pmin": 1.0,
        "pmax": 99.8,
        "normalize_jointly": False,
        "prob_thresh": None,
        "nms_thresh": None,
        "n_tiles": None,
        "random_weights": False,
    }

    def model_name(self, domain: str | None = None) -> str:
        """The model for ``domain`` (the prepared domain by default), or the one named in the parameters."""
        if self.params["model_dir"]:
            return Path(self.params["model_dir"]).name
        return self.params["model"] or stardist_model_for(domain if domain is not None else self.domain)

    def _model_key(self, domain: str | None) -> object:
        if domain is None and not (self.params["model"] or self.params["model_dir"]):
            raise ParameterError(
                f"Method '{self.name}' picks its model by domain: give the dataset a domain (--domain) "
                "or pass model=NAME."
            )
        return self.model_name(domain)

    def _prepare(self, device: str, domain: str | None) -> None:
        import tensorflow as tf
        from stardist.models import Config2D, StarDist2D

        p, name = self.params, self.model_name(domain)
        self._folder = None
        if p["random_weights"]:
            n_in = 3 if name == "2D_versatile_he" else 1
            tf.keras.utils.set_random_seed(0)
            model = StarDist2D(Config2D(n_channel_in=n_in, **VERSATILE_CONFIG), name=None, basedir=None)
        elif p["model_dir"]:
            folder = Path(p["model_dir"])
            if not (folder / "config.json").is_file():
                raise MethodUnavailableError(f"StarDist model_dir {folder} has no config.json.")
            model = StarDist2D(None, name=folder.name, basedir=str(folder.parent))
            self._folder = folder
        else:
            from csbdeep.models.pretrained import get_registered_models

            if name not in get_registered_models(StarDist2D, return_aliases=False):
                raise ParameterError(
                    f"Unknown StarDist2D model '{name}'; registered: {', '.join(MODEL_URLS)}, ..."
                )
            try:
                model = StarDist2D.from_pretrained(name)
            except Exception as error:
                folder = keras_model_folder(name)
                raise MethodUnavailableError(
                    f"StarDist model '{name}' is not in {folder} and could not be downloaded from "
                    f"{MODEL_URLS.get(name, 'its registered URL')} ({_reason(error)}); put {name}.zip "
                    "there (or set KERAS_HOME), or pass model_dir=FOLDER holding its config.json and weights."
                ) from None
            self._folder = keras_model_folder(name)
        self._model, self._name = model, name

    def _segment(self, image: np.ndarray) -> np.ndarray:
        p = self.params
        x = stardist_input(image, int(self._model.config.n_channel_in))
        x = normalize_input(x, p["pmin"], p["pmax"], p["normalize_jointly"])
        n_tiles = None if p["n_tiles"] is None else tuple(p["n_tiles"]) + ((1,) if x.ndim == 3 else ())
        labels, _ = self._model.predict_instances(
            x,
            prob_thresh=p["prob_thresh"],
            nms_thresh=p["nms_thresh"],
            n_tiles=n_tiles,
            verbose=False,
            show_tile_progress=False,
        )
        return labels_to_uint32(labels, image.shape[:2])

    def close(self) -> None:
        """Drop the model."""
        self._model = None

    def info(self) -> dict[str, Any]:
        """stardist/csbdeep/TensorFlow versions, model, its folder and thresholds."""
        model = getattr(self, "_model", None)
        thresholds = getattr(model, "thresholds", None)
        return {
            "library": f"stardist=={dist_version('stardist')}",
            "csbdeep": dist_version("csbdeep"),
            "tensorflow": dist_version("tensorflow-cpu") or dist_version("tensorflow"),
            "model": getattr(self, "_name", self.model_name()),
            "weights": RANDOM_WEIGHTS
            if self.params["random_weights"]
            else str(getattr(self, "_folder", None)),
            "thresholds": None
            if thresholds is None
            else {"prob": float(thresholds.prob), "nms": float(thresholds.nms)},
        }


def labels_to_uint32(labels: Any, shape: tuple[int, int]) -> np.ndarray:
    """``predict_instances``' int32 label image as uint32, its shape checked."""
    labels = np.asarray(labels)
    if labels.shape != tuple(shape):
        raise ValueError(f"StarDist returned labels of shape {labels.shape}, expected {tuple(shape)}.")
    if labels.size and labels.min() < 0:
        raise ValueError("StarDist returned negative labels.")
    return labels.astype(np.uint32)


def _reason(error: Exception) -> str:
    """A short cause: the exception type, or for keras' bare ``Exception`` the end of its message."""
    if type(error) is not Exception:
        return type(error).__name__
    return str(error).split(" -- ")[-1].strip()[:120] or "Exception"
