"""Image conversions for the wrappers, in one place: what each library is given.

Every method receives an image as stored by its dataset: ``(H, W)`` grey or ``(H, W, C)`` with C = 2 or 3,
any numeric dtype (channels last). Each library wants something else (SAM: uint8 RGB; Cellpose: float;
CellSAM: ``(blank, nuclear, whole-cell)``; SAM3: a PIL image). The conversions live here so that the
convention for two-channel images is decided once:

**Two-channel images are (whole-cell, nucleus)**, Cellpose's ``[cytoplasm, nucleus]`` order (TissueNet-style
data is prepared this way). Imports numpy only.
"""

from __future__ import annotations

import numpy as np


# -- intensity and channels ------------------------------------------------------------------------------
def to_float(image: np.ndarray) -> np.ndarray:
    """Return ``image`` as float32 (bool becomes 0/1)."""
    return np.asarray(image, dtype=np.float32)


def to_grey(image: np.ndarray) -> np.ndarray:
    """One float32 channel: the image itself, or the mean over its channels (Cellpose ``channels=[0, 0]``)."""
    image = to_float(image)
    return image.mean(axis=-1) if image.ndim == 3 else image


def minmax_uint8(image: np.ndarray) -> np.ndarray:
    """Scale an image to uint8 as the paper's code did; uint8 input is returned unchanged.

    micro-sam's ``_to_image`` at the paper's commit 4f6d45e2 (util.py:605-613), which every µSAM, AMG and
    SAM3 baseline of the paper went through: uint8 stays as it is; anything else becomes float32, the
    global minimum (all channels together) is subtracted, the result divided by its maximum, multiplied by
    255 and truncated to uint8 (``astype``, not rounding). The same numpy expressions are used here, so the
    result is bit for bit the paper's. A constant image (0 / 0 in the paper's code) becomes zeros.
    """
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image
    if image.size == 0 or image.min() == image.max():
        return np.zeros(image.shape, dtype=np.uint8)
    scaled = image.astype("float32") - image.min()
    scaled = scaled / scaled.max()
    return (scaled * 255).astype("uint8")


def to_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` uint8 for SAM-family models: the paper's ``_to_image`` (micro-sam 4f6d45e2).

    Non-uint8 data are scaled over the whole image first (:func:`minmax_uint8`), then grey is repeated into
    three channels and RGB is kept. Beyond the paper (whose code raised an error there): two channels
    (whole-cell, nucleus) become R and G with B = 0, and of more than three channels the first three are kept.
    """
    image = minmax_uint8(image)
    if image.ndim == 2:
        return np.repeat(image[..., None], 3, axis=-1)
    if image.shape[-1] == 2:
        return np.concatenate([image, np.zeros((*image.shape[:2], 1), np.uint8)], axis=-1)
    return np.ascontiguousarray(image[..., :3])


def to_pil_rgb(image: np.ndarray):
    """A PIL RGB image (SAM3's processor reads the size of numpy input wrongly, so it gets PIL)."""
    from PIL import Image  # pillow is a dependency of torchvision and of every SAM package

    return Image.fromarray(to_rgb_uint8(image))


def to_cellsam(image: np.ndarray) -> np.ndarray:
    """Float32 ``(H, W, 3)`` in CellSAM's order ``(blank, nuclear, whole-cell)``; RGB stays RGB.

    A grey image goes into the last channel, where CellSAM's own ``format_image_shape`` puts one channel
    (passing it 2D to ``cellsam_pipeline`` would let its channel-wise min-max touch image columns 0-2).
    Two channels (whole-cell, nucleus) become ``(0, nucleus, whole-cell)``.
    """
    image = to_float(image)
    out = np.zeros((*image.shape[:2], 3), dtype=np.float32)
    if image.ndim == 2:
        out[..., 2] = image
    elif image.shape[-1] == 2:
        out[..., 1], out[..., 2] = image[..., 1], image[..., 0]
    else:
        out[:] = image[..., :3]
    return out
