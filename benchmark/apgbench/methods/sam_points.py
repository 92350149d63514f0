"""The SAM side of the µSAM methods: micro-sam fed the paper's input, and point prompts answered by SAM.

- :func:`paper_input`: while active, micro-sam >= 1.7 takes the already converted image as given (the paper's
  micro-sam left uint8 untouched; later versions rescale every channel once more);
- :func:`decode_single_masks` and :class:`SamPointModel`: SAM's prompt encoder and mask decoder answering
  APG's point prompts in batches, per tile when the image is tiled, as low-resolution logits that
  :class:`apgbench.apg.LogitUpsampler` brings to the image only inside each mask's box.

Only numpy, the standard library and apgbench are imported at module level.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from ..apg import LogitUpsampler, PromptMasks
from .precision import DEFAULT_PRECISION, autocast


@contextmanager
def paper_input():
    """While active, micro-sam takes the image as given: its ``util._to_image`` only checks it.

    micro-sam 1.8's ``_to_image`` min-max scales each channel to 0-255 with a ``+1e-7`` and truncation, so
    even a full-range uint8 image changes; the paper's version left uint8 untouched. The caller passes
    :func:`~apgbench.methods.images.to_rgb_uint8`'s output, which is already what the paper's encoder
    received. Restored on exit.
    """
    from micro_sam import util

    original = util._to_image

    def passthrough(image):
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(
                f"micro-sam expected a converted (H, W, 3) uint8 image, got {image.dtype} {image.shape}."
            )
        return np.array(image)

    util._to_image = passthrough
    try:
        yield
    finally:
        util._to_image = original


def decode_single_masks(model, features, sparse, dense):
    """SAM's ``mask_decoder(..., multimask_output=False)``: low-res logits ``(N, 256, 256)`` and IoUs ``(N,)``.

    Same modules and math as ``MaskDecoder.predict_masks``, but the image embedding is not repeated per
    prompt: without mask prompts the dense embedding is the same for every prompt, so the transformer's
    first-layer image projections run once and are broadcast (batched matmul does that), and only the
    single-mask output token is decoded. About 25% less time on CPU; outputs agree to ~1e-7.
    """
    import torch

    decoder = model.mask_decoder
    n = sparse.shape[0]
    tokens = torch.cat([decoder.iou_token.weight, decoder.mask_tokens.weight]).unsqueeze(0).expand(n, -1, -1)
    tokens = torch.cat([tokens, sparse], dim=1)
    src = features + dense[:1]
    hs, keys = decoder.transformer(src, model.prompt_encoder.get_dense_pe(), tokens)
    channels, height, width = src.shape[1:]
    upscaled = decoder.output_upscaling(keys.transpose(1, 2).reshape(n, channels, height, width))
    hyper = decoder.output_hypernetworks_mlps[0](hs[:, 1, :])
    c, h, w = upscaled.shape[1:]
    logits = (hyper[:, None, :] @ upscaled.reshape(n, c, h * w)).reshape(n, h, w)
    return logits, decoder.iou_prediction_head(hs[:, 0, :])[:, 0]


class SamPointModel:
    """A SAM predictor as :class:`apgbench.apg.PromptableModel`.

    One batched prompt-encoder + mask-decoder call per batch of points; the 256x256 logits are upsampled
    only inside each mask's box (:class:`apgbench.apg.LogitUpsampler`), which reproduces
    ``SamPredictor.predict_torch`` + micro-sam's thresholding and stability score.

    Parameters
    ----------
    predictor : segment_anything.SamPredictor
        Its model; the features come from ``embeddings``.
    embeddings : dict
        micro-sam's ``precompute_image_embeddings`` output for the image (tiled or not).
    shape : tuple of int
        The image's ``(H, W)``.
    tiles : list of (slice, slice) or None
        For tiled embeddings: each tile's outer block (tile + halo), indexed by tile id.
    tile_of : callable or None
        Maps a ``(row, col)`` point to its tile id (the tile whose core holds it).
    precision : {"fp32", "bf16", "fp16"}
        The mask decoder's precision (:mod:`apgbench.methods.precision`); logits come back as float32.
    """

    def __init__(
        self, predictor, embeddings, shape, tiles=None, tile_of=None, precision: str = DEFAULT_PRECISION
    ) -> None:
        self.predictor, self.embeddings, self.shape = predictor, embeddings, tuple(shape)
        self.tiles, self.tile_of, self.precision = tiles, tile_of, precision
        self._upsamplers: dict = {}

    def _decode(self, points: np.ndarray, tile_id: int | None) -> PromptMasks:
        import torch
        from micro_sam import util
        from segment_anything.utils.transforms import ResizeLongestSide

        predictor = util.set_precomputed(self.predictor, self.embeddings, tile_id=tile_id)
        offset = (0, 0) if tile_id is None else (self.tiles[tile_id][0].start, self.tiles[tile_id][1].start)
        original, input_size = tuple(predictor.original_size), tuple(predictor.input_size)
        key = (original, input_size)
        if key not in self._upsamplers:
            model = predictor.model
            self._upsamplers[key] = LogitUpsampler(
                original,
                input_size,
                lowres=256,
                padded=model.image_encoder.img_size,
                mask_threshold=model.mask_threshold,
            )
        local = points - np.array(offset)
        coords = ResizeLongestSide(predictor.model.image_encoder.img_size).apply_coords(
            local[:, None, ::-1].astype(np.float64), original
        )
        model, device = predictor.model, predictor.device
        with torch.no_grad(), autocast(self.precision, device):
            sparse, dense = model.prompt_encoder(
                points=(
                    torch.as_tensor(coords, dtype=torch.float32, device=device),
                    torch.ones((len(points), 1), dtype=torch.float32, device=device),
                ),
                boxes=None,
                masks=None,
            )
            logits, iou = decode_single_masks(model, predictor.features, sparse, dense)
        return self._upsamplers[key](
            logits.float().cpu().numpy(), iou.float().cpu().numpy(), offset=offset, shape=self.shape
        )

    def predict_points(self, points: np.ndarray) -> PromptMasks:
        """Masks for ``(row, col)`` points, in order."""
        points = np.asarray(points, dtype=np.int64).reshape(-1, 2)
        if len(points) == 0:
            return PromptMasks.empty(self.shape)
        if self.tiles is None:
            return self._decode(points, None)
        tile_ids = np.array([self.tile_of(p) for p in points])
        order, parts = [], []
        for tile_id in np.unique(tile_ids):
            index = np.flatnonzero(tile_ids == tile_id)
            order.append(index)
            parts.append(self._decode(points[index], int(tile_id)))
        merged = PromptMasks.concatenate(parts, self.shape)
        return merged.select(np.argsort(np.concatenate(order), kind="stable"))
