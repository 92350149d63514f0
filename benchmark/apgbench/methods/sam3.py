"""``sam3``: SAM3 promptable concept segmentation with a text prompt (``build_sam3_image_model`` + ``Sam3Processor``).

Facts about the library this wrapper handles:

- **Prompt.** The paper used ``"cell"`` everywhere; the ``prompt`` parameter is set per dataset (the runner
  passes ``DatasetConfig.prompt``) and by ``--prompt``.
- **The paper's procedure** (micro-sam 4f6d45e2, ``scripts/apg_experiments/prepare_baselines.py:34-53``):
  one processor call per image on ``_to_image(image)`` as a PIL image, masks painted in the processor's
  order, a later mask overwriting an earlier one. That is the default.
- **Object budget.** The detector has 200 queries, so a dense image saturates. With ``retile=True`` a tile
  returning at least ``dense_fraction * max_objects`` objects is split into 2x2 overlapping tiles
  (recursively, down to ``min_tile``); each object is kept by the tile whose core holds its centroid
  (:mod:`.tiling`). Not the paper's procedure, so off by default.
- **Input.** The processor takes a PIL image: numpy input makes it read (W, C) as the image size.
- **Painting.** ``paint_order="query"`` (default, the paper's) or ``"score"`` (ascending score, so the most
  confident object wins overlaps).
- **Weights** are gated on Hugging Face (``facebook/sam3``): a missing access gives one clear sentence.
- **CUDA only.** The package hard-codes ``device="cuda"`` while building (e.g. its position encoding), so
  :meth:`Sam3._prepare` refuses a CPU device with one sentence.
- PyPI ``sam3`` 0.1.4 ships without its tokenizer vocabulary (``assets/bpe_simple_vocab_16e6.txt.gz``, CLIP's
  BPE vocabulary) and does not declare torch, triton or psutil; the ``sam3`` extra adds them and
  ``open-clip-torch``, whose copy of the vocabulary is used when ``bpe_path`` is not given.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import numpy as np

from . import register_method
from .base import MethodUnavailableError, ParameterError, Segmenter, relabel_sequential
from .images import to_pil_rgb, to_rgb_uint8
from .meta import MethodMeta, one_model
from .tiling import Region, centroid_in_core, split_region, whole_image
from .weights import dist_version, weights_info

HF_REPO, HF_FILE = "facebook/sam3", "sam3.pt"
BPE_NAME = "bpe_simple_vocab_16e6.txt.gz"
GATED = (
    "SAM3's weights are gated on Hugging Face: request access at https://huggingface.co/facebook/sam3, then "
    "log in (`hf auth login` or set HF_TOKEN), or pass checkpoint=PATH to a downloaded sam3.pt."
)


def paint_by_score(
    masks: list[np.ndarray], scores: list[float] | np.ndarray, shape: tuple[int, int], windows=None
) -> np.ndarray:
    """Paint masks in ascending score order (the highest score is painted last and wins overlaps)."""
    return paint_objects(masks, scores, shape, windows, order="score")


def paint_objects(
    masks: list[np.ndarray],
    scores: list[float] | np.ndarray,
    shape: tuple[int, int],
    windows=None,
    order: str = "query",
) -> np.ndarray:
    """Paint masks one after the other; a later mask overwrites an earlier one.

    Parameters
    ----------
    masks : list of bool arrays
        One mask per object, each the size of its window (or of ``shape`` without windows).
    scores : sequence of float
        Confidence per object.
    shape : tuple of int
        Output ``(H, W)``.
    windows : list of (slice, slice), optional
        Where each mask lies in the image.
    order : {"query", "score"}
        ``query``: in the given order (the processor's; the paper's ``prepare_baselines.py:50-52``);
        ``score``: by ascending score, so the most confident object wins overlaps.

    Returns
    -------
    labels : ndarray of uint32
        Ids 1..N in painting order (objects fully hidden by later ones leave no id).
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(masks) != scores.size:
        raise ValueError(f"{len(masks)} masks but {scores.size} scores.")
    if order not in ("query", "score"):
        raise ValueError(f"Unknown paint_order '{order}'; expected 'query' or 'score'.")
    windows = [(slice(None), slice(None))] * len(masks) if windows is None else windows
    labels = np.zeros(shape, dtype=np.uint32)
    sequence = np.arange(len(masks)) if order == "query" else np.argsort(scores, kind="stable")
    for index, k in enumerate(sequence, start=1):
        labels[windows[k]][np.asarray(masks[k], dtype=bool)] = index
    return relabel_sequential(labels)


def hf_cache_dir() -> Path:
    """Hugging Face's hub cache (``$HF_HUB_CACHE``, ``$HF_HOME/hub`` or ``~/.cache/huggingface/hub``)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = (
        os.environ.get("HF_HOME")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface"
    )
    return Path(home) / "hub"


def find_bpe(explicit: str | os.PathLike | None = None) -> Path:
    """The tokenizer vocabulary: ``explicit``, else sam3's own asset, else open_clip's copy of it."""
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise MethodUnavailableError(f"Method 'sam3': bpe_path {path} does not exist.")
        return path
    candidates = []
    for package, relative in (("sam3", f"../assets/{BPE_NAME}"), ("open_clip", BPE_NAME)):
        spec = importlib.util.find_spec(package)
        for location in (spec.submodule_search_locations or []) if spec else []:
            candidates.append(Path(location) / relative)
    for path in candidates:
        if path.is_file():
            return path.resolve()
    raise MethodUnavailableError(
        f"Method 'sam3' needs the tokenizer vocabulary {BPE_NAME}, which PyPI sam3 does not ship: "
        f'install "apgbench[sam3]" (adds open-clip-torch, which has it) or pass bpe_path=PATH.'
    )


def weights_status() -> tuple[bool, str]:
    """Whether ``sam3.pt`` is in the Hugging Face cache (reads the folder; imports nothing)."""
    cached = next(iter(sorted(hf_cache_dir().glob(f"models--facebook--sam3/snapshots/*/{HF_FILE}"))), None)
    if cached is not None:
        return True, f"ready on a CUDA GPU (weights {cached})"
    if os.environ.get("HF_TOKEN"):
        return True, "ready on a CUDA GPU; gated weights not cached, first run downloads them with HF_TOKEN"
    return False, "weights not cached. " + GATED


@register_method
class Sam3(Segmenter):
    """SAM3 concept segmentation of every instance matching a text prompt.

    Parameters
    ----------
    prompt : str
        The concept; the paper's ``"cell"`` unless the dataset config or ``--prompt`` names another.
    checkpoint : str or None
        ``sam3.pt``; default: the Hugging Face cache (downloaded with your HF login when absent).
    bpe_path : str or None
        Tokenizer vocabulary; found automatically when None (see :func:`find_bpe`).
    confidence_threshold : float
        Objects scoring below are dropped (``Sam3Processor``'s default 0.5).
    paint_order : {"query", "score"}
        Painting order of the objects (see :func:`paint_objects`); ``query`` is the paper's.
    retile : bool
        Split dense images into 2x2 tiles (recursively) when the object budget saturates; False (the
        paper's procedure): one call per image.
    max_objects : int
        The detector's number of queries (200).
    dense_fraction : float
        With ``retile``: a tile returning ``>= dense_fraction * max_objects`` objects is split into 2x2 tiles.
    tile_overlap : int
        Pixels by which a tile extends past its core.
    min_tile : int
        Cores are not split below this side length.
    """

    meta = MethodMeta(
        name="sam3",
        description="SAM3 concept segmentation with a text prompt (needs a CUDA GPU)",
        extra="sam3",
        requires=("torch", "sam3"),
        paper_row=("sam3", 'text prompt "cell"'),
        table_order=30,
        trained_on=frozenset({"livecell", "pannuke"}),
        models=one_model("sam3"),
        default_model="sam3",
        weights_status=weights_status,
    )
    default_params = {
        "prompt": "cell",
        "checkpoint": None,
        "bpe_path": None,
        "confidence_threshold": 0.5,
        "paint_order": "query",
        "retile": False,
        "max_objects": 200,
        "dense_fraction": 0.9,
        "tile_overlap": 64,
        "min_tile": 256,
    }

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        if params.get("prompt", "cell") is None:  # a dataset without its own prompt keeps the paper's
            self.params["prompt"] = "cell"
        if not isinstance(self.params["prompt"], str) or not self.params["prompt"].strip():
            raise ParameterError("SAM3's prompt must be a non-empty string.")
        self.params["prompt"] = self.params["prompt"].strip()

    # -- model ---------------------------------------------------------------------------------------------
    def _prepare(self, device: str, domain: str | None) -> None:
        import torch

        if not str(device).startswith("cuda") or not torch.cuda.is_available():
            raise MethodUnavailableError(
                "Method 'sam3' needs a CUDA GPU: the sam3 package hard-codes 'cuda' when it builds the model, "
                f"so it cannot run on '{device}'."
            )
        from sam3.model.sam3_image_processor import Sam3Processor
        from sam3.model_builder import build_sam3_image_model

        self._weights = self._checkpoint()
        self._bpe = find_bpe(self.params["bpe_path"])
        model = build_sam3_image_model(
            bpe_path=str(self._bpe), device=device, checkpoint_path=str(self._weights), load_from_HF=False
        )
        self._processor = Sam3Processor(
            model, device=device, confidence_threshold=float(self.params["confidence_threshold"])
        )

    def _checkpoint(self) -> Path:
        if self.params["checkpoint"] is not None:
            path = Path(self.params["checkpoint"]).expanduser()
            if not path.is_file():
                raise MethodUnavailableError(f"Method 'sam3': checkpoint {path} does not exist.")
            return path
        from huggingface_hub import hf_hub_download

        try:
            hf_hub_download(repo_id=HF_REPO, filename="config.json")
            return Path(hf_hub_download(repo_id=HF_REPO, filename=HF_FILE))
        except Exception as err:
            raise MethodUnavailableError(
                f"Method 'sam3' could not get its weights ({type(err).__name__}). {GATED}"
            ) from err

    def _detect(self, tile_rgb: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        """Masks (each the tile's size) and scores of the objects SAM3 finds for the prompt in one tile."""
        state = self._processor.set_image(to_pil_rgb(tile_rgb))
        state = self._processor.set_text_prompt(prompt=self.params["prompt"], state=state)
        masks = state["masks"].detach().cpu().numpy().reshape(-1, *tile_rgb.shape[:2])
        return list(masks.astype(bool)), state["scores"].detach().float().cpu().numpy().reshape(-1)

    # -- tiling and painting -------------------------------------------------------------------------------
    def _segment(self, image: np.ndarray) -> np.ndarray:
        rgb = to_rgb_uint8(image)  # normalise once for the whole image, so tiles share one intensity scale
        masks, scores, windows = [], [], []
        self._collect(rgb, whole_image(rgb.shape), masks, scores, windows)
        return paint_objects(masks, scores, rgb.shape[:2], windows, order=self.params["paint_order"])

    def _collect(self, rgb: np.ndarray, region: Region, masks: list, scores: list, windows: list) -> None:
        """Detect in ``region``; split it when the object budget saturates; keep objects owned by its core."""
        p = self.params
        found, found_scores = self._detect(rgb[region.slices])
        r0, r1, c0, c1 = region.core
        if (
            p["retile"]
            and len(found) >= p["dense_fraction"] * p["max_objects"]
            and min(r1 - r0, c1 - c0) >= 2 * p["min_tile"]
        ):
            for child in split_region(region, rgb.shape, int(p["tile_overlap"])):
                self._collect(rgb, child, masks, scores, windows)
            return
        for mask, score in zip(found, found_scores):
            if centroid_in_core(mask, region):
                masks.append(mask)
                scores.append(float(score))
                windows.append(region.slices)

    def info(self) -> dict[str, Any]:
        """sam3 version, prompt, weights file and hash, precision."""
        weights = getattr(self, "_weights", None)
        return {
            "library": f"sam3=={dist_version('sam3')}",
            "model": "sam3",
            "prompt": self.params["prompt"],
            **weights_info(weights),
            "tokenizer": None if getattr(self, "_bpe", None) is None else str(self._bpe),
            "precision": "float32 (library autocast where it enables it)",
        }

    def close(self) -> None:
        """Drop the model."""
        self._processor = None
