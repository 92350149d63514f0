"""µSAM / PathoSAM methods: AIS, APG (ours, two prompt modes) and micro-sam's own APG for cross-checking.

All four share one model load per run (micro-sam's ``get_predictor_and_decoder``, weights from micro-sam's
cache: ``$MICROSAM_CACHEDIR/models/<model>`` or pooch's ``micro_sam`` cache folder) and one image-encoder
pass per image. They differ only in what follows the decoder maps:

- ``ais``: :func:`apgbench.apg.automatic_instance_segmentation` (seeded watershed);
- ``apg`` / ``apg-bd``: :func:`apgbench.apg.automatic_prompt_generation` with ``components`` /
  ``boundary-maxima`` prompts, the SAM mask decoder answering them through
  :class:`~apgbench.methods.sam_points.SamPointModel`;
- ``apg-ref``: ``micro_sam.instance_segmentation.AutomaticPromptGenerator.generate``.

The split is explicit: :meth:`_MicroSam.shared_stage` (model + input conversion -> embeddings and decoder
maps, optionally from the embedding cache) and each method's ``_method_stage``; ``segment`` runs both, and
family runs (:mod:`apgbench.family`) and sweeps (:mod:`apgbench.sweep`) call ``shared_stage`` once per image
and ``segment_shared`` per method or combination.

As in the paper's runs (``prepare_baselines.py:22-27`` at micro-sam 4f6d45e2) images are not tiled by
default. With ``tile_shape`` and ``halo`` set, images larger than ``max_untiled`` pixels on a side (0: all)
are tiled as micro-sam does: tiled embeddings, stitched decoder maps, each prompt answered in the tile
whose core holds it.

The image reaches the encoder as the paper's code converted it (:func:`apgbench.methods.images.
to_rgb_uint8`, micro-sam 4f6d45e2's ``_to_image``). micro-sam >= 1.7 rescales every channel of every image
(uint8 included) once more; :func:`~apgbench.methods.sam_points.paper_input` switches that off while micro-sam runs.
Only numpy, the standard library and apgbench are imported at module level.
"""

from __future__ import annotations

import os
from abc import abstractmethod
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np

from ..apg import (
    AIS_DEFAULTS,
    APG_DEFAULTS,
    automatic_instance_segmentation,
    automatic_prompt_generation,
)
from ..config import DOMAINS
from . import register_method
from .base import MethodUnavailableError, ParameterError, Segmenter, check_image, check_labels
from .embedding_cache import active_cache
from .images import to_rgb_uint8
from .meta import MethodMeta
from .precision import PRECISIONS, dtype_name, set_module_precision
from .sam_points import SamPointModel, paper_input
from .weights import dist_version, weights_sha256

DEFAULT_MODELS = {"nuclei-histo": "vit_b_histopathology"}
DEFAULT_MODEL = "vit_b_lm"
# Where micro-sam 1.8 downloads the two default models from (facts from micro_sam.util.models()).
KNOWN_URLS = {
    "vit_b_lm": "https://uk1s3.embassy.ebi.ac.uk/public-datasets/bioimage.io/diplomatic-bug/1.2/files/vit_b.pt",
    "vit_b_lm_decoder": "https://uk1s3.embassy.ebi.ac.uk/public-datasets/bioimage.io/diplomatic-bug/1.2/files/vit_b_decoder.pt",
    "vit_b_histopathology": "https://owncloud.gwdg.de/index.php/s/sBB4H8CTmIoBZsQ/download",
    "vit_b_histopathology_decoder": "https://owncloud.gwdg.de/index.php/s/KO9AWqynI7SFOBj/download",
}
# The datasets in µSAM's / PathoSAM's training data (the paper's Fig. 2 marks; plantseg-root-3d is the same
# data scored as volumes).
TRAINED_ON = frozenset(
    {
        "cellpose",
        "deepbacs",
        "dsb",
        "dynamicnuclearnet",
        "livecell",
        "monuseg",
        "omnipose",
        "pannuke",
        "plantseg-root",
        "plantseg-root-3d",
        "puma",
        "tissuenet",
        "yeaz",
    }
)
MODELS = {domain: DEFAULT_MODELS.get(domain, DEFAULT_MODEL) for domain in DOMAINS}
# ``precision``: the image encoder, the µSAM decoder and SAM's mask decoder under autocast (methods/precision.py)
_COMMON = {
    "model": None,
    "checkpoint": None,
    "tile_shape": None,
    "halo": None,
    "max_untiled": 0,
    "precision": "fp32",
}


class SharedStage(NamedTuple):
    """One image's shared stage: micro-sam's embeddings, the (foreground, center, boundary) decoder maps,
    the ``(tile_shape, halo)`` used (both None untiled) and the image's ``(H, W)``.
    """

    embeddings: dict
    maps: tuple
    tiling: tuple
    shape: tuple


def _hashable(value):
    return tuple(value) if isinstance(value, list) else value


def microsam_model_dir() -> Path:
    """micro-sam's model cache: ``$MICROSAM_CACHEDIR/models`` or ``pooch.os_cache("micro_sam")/models``."""
    root = os.environ.get("MICROSAM_CACHEDIR")
    if not root:
        import pooch

        root = pooch.os_cache("micro_sam")
    return Path(root).expanduser() / "models"


def weights_status() -> tuple[bool, str]:
    """Whether the default µSAM weights are in micro-sam's cache (no torch import)."""
    folder = microsam_model_dir()
    missing = [n for n in (DEFAULT_MODEL, f"{DEFAULT_MODEL}_decoder") if not (folder / n).is_file()]
    if not missing:
        return True, f"ready (weights in {folder})"
    return True, f"ready; {DEFAULT_MODEL} not cached in {folder}, the first run downloads it"


def _meta(
    name: str, description: str, table_order: int, paper_row: tuple[str, str], supports_3d: str = "none"
) -> MethodMeta:
    """The metadata the µSAM methods share (extra, libraries, models, training data), with their own id."""
    return MethodMeta(
        name=name,
        description=description,
        extra="musam",
        supports_3d=supports_3d,
        requires=("torch", "micro_sam", "segment_anything"),
        paper_row=paper_row,
        table_order=table_order,
        trained_on=TRAINED_ON,
        models=MODELS,
        default_model=DEFAULT_MODEL,
        weights_status=weights_status,
    )


class _MicroSam(Segmenter):
    """Shared model loading, embeddings and decoder maps of the µSAM methods."""

    param_choices: ClassVar[dict[str, tuple[Any, ...]]] = {"precision": tuple(PRECISIONS)}

    def model_name(self) -> str:
        """The micro-sam model used for the current domain: the ``model`` parameter, else the domain's."""
        return self.params["model"] or self.meta.model_for(self.domain)

    def _prepare(self, device: str, domain: str | None) -> None:
        from micro_sam import util
        from micro_sam.instance_segmentation import get_predictor_and_decoder

        name, checkpoint = self.model_name(), self.params["checkpoint"]
        if checkpoint is None:
            folder, registry = microsam_model_dir(), util.models()
            if name not in registry.registry:
                raise ParameterError(
                    f"Unknown micro-sam model '{name}'; see micro_sam.util.get_model_names()."
                )
            for file in (name, f"{name}_decoder"):
                if file in registry.registry and not (folder / file).is_file():
                    try:  # micro-sam's own download (pooch, hash-checked)
                        registry.fetch(file, progressbar=False)
                    except Exception as error:
                        raise MethodUnavailableError(
                            f"µSAM weight file {folder / file} is missing and could not be downloaded from "
                            f"{registry.urls.get(file, KNOWN_URLS.get(file, '?'))} ({type(error).__name__}); "
                            f"put it there, or set MICROSAM_CACHEDIR to a folder holding models/{file}."
                        ) from None
        elif not Path(checkpoint).is_file():
            raise MethodUnavailableError(f"µSAM checkpoint {checkpoint} does not exist.")
        model_type = name if checkpoint is None else sam_backbone(name)
        self.predictor, self.decoder = get_predictor_and_decoder(model_type, checkpoint, device=device)
        model = self.predictor.model
        set_module_precision(
            [model.image_encoder, model.mask_decoder, self.decoder], self.params["precision"], device
        )
        self._weights = {
            "model": name,
            "checkpoint": str(checkpoint or folder / name),
            "weights_hash": getattr(self.predictor, "_hash", None),
        }

    def _tiling(self, shape) -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
        tile_shape, halo = self.params["tile_shape"], self.params["halo"]
        if tile_shape is None or max(shape) <= int(self.params["max_untiled"]):
            return None, None
        if halo is None:
            raise ParameterError(
                f"Method '{self.name}': tile_shape={tile_shape} needs a halo too (halo=64,64)."
            )
        return tuple(tile_shape), tuple(halo)

    # -- shared stage: model + input conversion -> embeddings and decoder maps --------------------------
    def shared_key(self) -> tuple:
        """What the shared stage depends on: methods with equal keys can share one model and one stage.

        The model, its checkpoint, the tiling, the precision and the device; the input conversion is the
        same for all µSAM methods (:func:`~apgbench.methods.images.to_rgb_uint8`).
        """
        p = self.params
        return (
            "musam",
            self.model_name(),
            p["checkpoint"],
            _hashable(p["tile_shape"]),
            _hashable(p["halo"]),
            p["max_untiled"],
            p["precision"],
            str(self.device),
        )

    def share_model(self, owner: _MicroSam) -> None:
        """Use ``owner``'s loaded model instead of loading a copy (family runs); ``owner`` must be prepared."""
        if owner.shared_key() != self.shared_key():
            raise ValueError(f"'{self.name}' cannot share the model of '{owner.name}': their models differ.")
        self.predictor, self.decoder = owner.predictor, owner.decoder
        self._weights = dict(owner._weights)
        self.device, self.domain = owner.device, owner.domain
        self._prepared, self._loaded_key = True, owner._loaded_key

    def shared_stage(self, image: np.ndarray) -> SharedStage:
        """The image's embeddings and decoder maps, computed once for every method of a family."""
        if not self._prepared:
            self.prepare(self.device, self.domain)
        image = check_image(image)
        cache = active_cache() if self._tiling(image.shape[:2])[0] is None else None  # untiled entries only
        if cache is not None:
            key = cache.key(image, **self._cache_provenance())
            hit = cache.get(key)
            if hit is not None:
                embeddings = {
                    "features": hit["features"],
                    "input_size": tuple(int(v) for v in hit["input_size"]),
                    "original_size": tuple(int(v) for v in hit["original_size"]),
                }
                maps = (hit["foreground"], hit["center_distances"], hit["boundary_distances"])
                return SharedStage(embeddings, maps, (None, None), image.shape[:2])
        embeddings, maps, tiling = self._maps(image)
        if cache is not None:
            cache.put(
                key,
                {
                    "features": np.asarray(embeddings["features"]),
                    "input_size": np.asarray(embeddings["input_size"]),
                    "original_size": np.asarray(embeddings["original_size"]),
                    **dict(zip(("foreground", "center_distances", "boundary_distances"), maps)),
                },
            )
        return SharedStage(embeddings, maps, tiling, image.shape[:2])

    def _cache_provenance(self) -> dict[str, Any]:
        """What the shared stage's output depends on besides the image (the embedding cache's key)."""
        weights = getattr(self, "_weights", {})
        # a checkpoint file: hashed once per file version (weights_sha256 caches by size and mtime)
        digest = weights.get("weights_hash") or weights_sha256(weights.get("checkpoint"))
        return {
            "stage": "musam",
            "model": self.model_name(),
            "weights": digest,
            "conversion": "to_rgb_uint8 (paper)",
            "micro_sam": dist_version("micro_sam"),
            "precision": self.info().get("precision"),
        }

    def segment_shared(self, image: np.ndarray, shared: SharedStage) -> np.ndarray:
        """The own stage of this method on a precomputed :meth:`shared_stage` of ``image``; validated labels."""
        image = check_image(image)
        if tuple(shared.shape) != tuple(image.shape[:2]):
            raise ValueError(f"The shared stage is for a {shared.shape} image, not {image.shape[:2]}.")
        return check_labels(self._method_stage(image, shared), image.shape[:2], self.name)

    def _segment(self, image: np.ndarray) -> np.ndarray:
        return self._method_stage(image, self.shared_stage(image))

    @abstractmethod
    def _method_stage(self, image: np.ndarray, shared: SharedStage) -> np.ndarray:
        """What follows the shared stage (AIS watershed, APG prompts and masks, ...): a label image."""

    def _maps(self, image: np.ndarray):
        """Embeddings and the three decoder maps, as micro-sam computes them from the paper's input."""
        from micro_sam import util
        from micro_sam.instance_segmentation import (
            InstanceSegmentationWithDecoder,
            TiledInstanceSegmentationWithDecoder,
        )

        tile_shape, halo = self._tiling(image.shape[:2])
        image = to_rgb_uint8(image)
        with paper_input():
            embeddings = util.precompute_image_embeddings(
                self.predictor, image, ndim=2, tile_shape=tile_shape, halo=halo, verbose=False
            )
            if tile_shape is None:
                segmenter = InstanceSegmentationWithDecoder(self.predictor, self.decoder)
                segmenter.initialize(image, image_embeddings=embeddings)
            else:
                segmenter = TiledInstanceSegmentationWithDecoder(self.predictor, self.decoder)
                segmenter.initialize(image, image_embeddings=embeddings, tile_shape=tile_shape, halo=halo)
        state = (
            segmenter.get_state()
            if tile_shape is None
            else {
                "foreground": segmenter._foreground,
                "center_distances": segmenter._center_distances,
                "boundary_distances": segmenter._boundary_distances,
            }
        )
        maps = (state["foreground"], state["center_distances"], state["boundary_distances"])
        return embeddings, maps, (tile_shape, halo)

    def point_model(self, embeddings, shape, tiling) -> SamPointModel:
        """The :class:`SamPointModel` for one image's embeddings."""
        tile_shape, halo = tiling
        precision = self.params["precision"]
        if tile_shape is None:
            return SamPointModel(self.predictor, embeddings, shape, precision=precision)
        from bioimage_cpp.utils import Blocking  # micro-sam's own tiling

        blocking = Blocking([0, 0], list(shape), list(tile_shape))
        tiles = []
        for tile_id in range(blocking.number_of_blocks):
            outer = blocking.get_block_with_halo(tile_id, list(halo)).outer_block
            tiles.append(tuple(slice(b, e) for b, e in zip(outer.begin, outer.end)))
        return SamPointModel(
            self.predictor,
            embeddings,
            shape,
            tiles,
            lambda p: blocking.coordinates_to_block_id([int(p[0]), int(p[1])]),
            precision=precision,
        )

    def _algorithm_params(self, defaults: dict) -> dict:
        return {k: v for k, v in self.params.items() if k in defaults}

    def info(self) -> dict[str, Any]:
        """micro-sam version, model name, checkpoint path and its registry hash."""
        return {
            "micro_sam": dist_version("micro_sam"),
            "torch": dist_version("torch"),
            "precision": dtype_name(self.params["precision"]),
            **getattr(self, "_weights", {"model": self.model_name()}),
        }

    def close(self) -> None:
        self.predictor = self.decoder = None


def sam_backbone(name: str) -> str:
    """The SAM backbone of a µSAM model name (``vit_b_lm`` -> ``vit_b``), which a custom checkpoint is built on."""
    return "_".join(name.split("_")[:2])


@register_method
class MicroSamAIS(_MicroSam):
    """µSAM decoder + seeded watershed."""

    # 3D: micro-sam's 3D AIS, per-slice AIS + its multicut merge (methods/musam3d.py)
    meta = _meta("ais", "µSAM/PathoSAM decoder + seeded watershed (AIS)", 70, ("ais", "default"), "stitch")
    default_params: ClassVar[dict[str, Any]] = {**_COMMON, **AIS_DEFAULTS}

    def _method_stage(self, image: np.ndarray, shared: SharedStage) -> np.ndarray:
        return automatic_instance_segmentation(*shared.maps, **self._algorithm_params(AIS_DEFAULTS))

    def _segment_volume(self, volume: np.ndarray, spacing) -> np.ndarray:
        from .musam3d import ais_volume

        tile_shape, halo = self._tiling(volume.shape[1:3])
        return ais_volume(
            self.predictor,
            self.decoder,
            volume,
            self._algorithm_params(AIS_DEFAULTS),
            tile_shape,
            halo,
            self.slice_progress,
        )


@register_method
class MicroSamAPG(_MicroSam):
    """Automatic prompt generation, this project's implementation."""

    # 3D: ours, 2D APG per slice + µSAM's overlap merge (methods/musam3d.py)
    meta = _meta(
        "apg",
        "automatic prompt generation over µSAM/PathoSAM (ours; connected-component prompts)",
        100,
        ("apg", "default"),
        "stitch",
    )
    prompts = "components"
    default_params: ClassVar[dict[str, Any]] = {
        **_COMMON,
        **{k: v for k, v in APG_DEFAULTS.items() if k != "prompts"},
    }

    def _method_stage(self, image: np.ndarray, shared: SharedStage) -> np.ndarray:
        model = self.point_model(shared.embeddings, image.shape[:2], shared.tiling)
        return automatic_prompt_generation(
            *shared.maps, model, prompts=self.prompts, **self._algorithm_params(APG_DEFAULTS)
        )

    def _segment_volume(self, volume: np.ndarray, spacing) -> np.ndarray:
        from .musam3d import apg_volume

        return apg_volume(self._segment, volume, self.slice_progress)


@register_method
class MicroSamAPGBoundary(MicroSamAPG):
    """APG with prompts at boundary-distance maxima (paper Fig. 3)."""

    meta = _meta(
        "apg-bd",
        "APG with boundary-distance maxima prompts (paper Fig. 3)",
        90,
        ("apg-bd", "default"),
        "stitch",
    )
    prompts = "boundary-maxima"


@register_method
class MicroSamAPGReference(_MicroSam):
    """micro-sam's own ``AutomaticPromptGenerator``, for cross-checking ``apg``."""

    # micro-sam's own APG is what the paper ran, so it shares APG's paper row
    meta = _meta(
        "apg-ref", "micro-sam's own AutomaticPromptGenerator (reference for apg)", 80, ("apg", "default")
    )
    default_params: ClassVar[dict[str, Any]] = {
        **_COMMON,
        "min_size": 25,
        "center_distance_threshold": 0.5,
        "boundary_distance_threshold": 0.5,
        "foreground_threshold": 0.5,
        "nms_threshold": 0.9,
        "batch_size": 32,
    }

    def _method_stage(self, image: np.ndarray, shared: SharedStage) -> np.ndarray:
        from micro_sam.instance_segmentation import get_instance_segmentation_generator

        (tile_shape, halo), embeddings, maps = shared.tiling, shared.embeddings, shared.maps
        segmenter = get_instance_segmentation_generator(
            self.predictor, is_tiled=tile_shape is not None, decoder=self.decoder, segmentation_mode="apg"
        )
        if tile_shape is None:
            segmenter.set_state(dict(zip(("foreground", "center_distances", "boundary_distances"), maps)))
        else:  # the tiled generator keeps the embeddings in its state, so initialise it fully
            with paper_input():
                segmenter.initialize(
                    to_rgb_uint8(image), image_embeddings=embeddings, tile_shape=tile_shape, halo=halo
                )
        keys = (
            "min_size",
            "center_distance_threshold",
            "boundary_distance_threshold",
            "foreground_threshold",
            "nms_threshold",
            "batch_size",
        )
        return np.asarray(segmenter.generate(**{k: self.params[k] for k in keys}), dtype=np.uint32)
