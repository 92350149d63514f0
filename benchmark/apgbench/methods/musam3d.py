"""µSAM methods on volumes: ``ais`` through micro-sam's own 3D mode, ``apg`` per slice + µSAM's merging rule.

- ``ais`` (micro-sam's code): ``micro_sam.automatic_segmentation.automatic_instance_segmentation(predictor,
  InstanceSegmentationWithDecoder, volume, ndim=3, ...)``, which runs ``automatic_3d_segmentation``: one
  image embedding per z slice (``precompute_image_embeddings(ndim=3)``), the decoder + seeded watershed on each
  slice, then ``merge_instance_segmentation_3d`` (a multicut over the overlaps of objects in adjacent slices,
  ``beta=0.5``, no gap closing, no minimal z extent: micro-sam's defaults).
- ``apg`` / ``apg-bd`` (ours): micro-sam has no 3D APG. Each slice is segmented by apgbench's 2D APG, exactly as
  a 2D image, and the slices are joined by :func:`apgbench.methods.stitch.stitch_slices` with the ``overlap``
  rule, which is µSAM's 3D merging objective (see that module) solved by our own greedy contraction.

Input: every slice is converted as the paper converted a 2D image (:func:`~apgbench.methods.images.
to_rgb_uint8`: min-max to uint8 per slice, as micro-sam's ``_to_image`` does per slice in 3D). micro-sam's 3D
path takes grey volumes only (``_segment_slices`` asserts ``(Z, Y, X)``), so ``ais`` refuses a multi-channel
volume; ``apg`` takes it (each slice is a 2D multi-channel image).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager

import numpy as np

from ..errors import InvalidInputError
from .images import to_rgb_uint8
from .stitch import segment_slices, stitch_slices

Progress = Callable[[int, int], None] | None


def grey_uint8_volume(volume: np.ndarray) -> np.ndarray:
    """Each slice as the paper's conversion makes it (uint8, per-slice min-max), one channel.

    Raises
    ------
    ValueError
        For a multi-channel volume, which micro-sam's 3D segmentation does not take.
    """
    volume = np.asarray(volume)
    if volume.ndim != 3:
        raise InvalidInputError(
            f"µSAM's 3D segmentation takes grey (Z, Y, X) volumes; got shape {volume.shape}."
        )
    return np.stack([to_rgb_uint8(plane)[..., 0] for plane in volume])


@contextmanager
def grey_slice_input():
    """While active, micro-sam turns a converted grey uint8 slice into RGB by repeating it, nothing else.

    The 3D counterpart of :func:`apgbench.methods.musam.paper_input`: micro-sam 1.8's ``_to_image`` would
    min-max scale every slice once more (the paper's version left uint8 untouched).
    """
    from micro_sam import util

    original = util._to_image

    def repeat(image):
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 2:
            raise InvalidInputError(
                f"micro-sam expected a converted (H, W) uint8 slice, got {image.dtype} {image.shape}."
            )
        return np.repeat(image[..., None], 3, axis=-1)

    util._to_image = repeat
    try:
        yield
    finally:
        util._to_image = original


def ais_volume(
    predictor,
    decoder,
    volume: np.ndarray,
    generate_kwargs: dict,
    tile_shape=None,
    halo=None,
    progress: Progress = None,
) -> np.ndarray:
    """µSAM's 3D AIS on a grey volume: micro-sam's ``automatic_instance_segmentation(..., ndim=3)``.

    Parameters
    ----------
    predictor, decoder
        micro-sam's ``get_predictor_and_decoder`` output.
    volume : (Z, Y, X) array
        The volume; each slice is converted as in 2D (:func:`grey_uint8_volume`).
    generate_kwargs : dict
        The AIS parameters, passed to micro-sam's ``generate`` for every slice.
    tile_shape, halo : tuple of int, optional
        micro-sam's tiling (both or neither).
    progress : callable, optional
        ``progress(done, total)`` after each slice's segmentation.

    Returns
    -------
    (Z, Y, X) ndarray of uint32
    """
    from micro_sam.automatic_segmentation import automatic_instance_segmentation as micro_sam_ais
    from micro_sam.instance_segmentation import (
        InstanceSegmentationWithDecoder,
        TiledInstanceSegmentationWithDecoder,
    )

    data = grey_uint8_volume(volume)
    cls = InstanceSegmentationWithDecoder if tile_shape is None else TiledInstanceSegmentationWithDecoder
    segmenter = cls(predictor, decoder)
    if progress is not None:  # micro-sam's own bar is tqdm; ours reports each slice to the runner's bar
        generate, done = segmenter.generate, [0]

        def generate_with_progress(**kwargs):
            out = generate(**kwargs)
            done[0] += 1
            progress(done[0], data.shape[0])
            return out

        segmenter.generate = generate_with_progress
    with grey_slice_input():
        labels = micro_sam_ais(
            predictor,
            segmenter,
            data,
            ndim=3,
            tile_shape=tile_shape,
            halo=halo,
            verbose=False,
            **generate_kwargs,
        )
    return np.asarray(labels).astype(np.uint32)


def apg_volume(
    segment_slice: Callable[[np.ndarray], np.ndarray], volume: np.ndarray, progress: Progress = None
) -> np.ndarray:
    """APG in 3D (ours): the 2D APG on every slice, joined by µSAM's overlap rule (``stitch_slices``)."""
    return stitch_slices(segment_slices(segment_slice, volume, progress), "overlap")
