"""Cellpose (``cellpose-sam``, ``cellpose3``) on volumes, through cellpose's own 3D modes.

Both of cellpose's modes are offered, chosen by the parameter ``stitch_threshold`` (cellpose's own name):

- ``stitch_threshold=0`` (default): ``eval(volume, do_3D=True, z_axis=0, anisotropy=z/x voxel size)``:
  cellpose predicts flows on the YX, ZY and ZX planes and follows them in 3D (its ``do_3D`` mode);
- ``stitch_threshold>0``: ``eval(volume, do_3D=False, stitch_threshold=t, z_axis=0)``: cellpose segments every
  slice and joins masks of adjacent slices whose IoU exceeds ``t`` (its ``stitch3D``).

The anisotropy is the config's voxel size ``z / x`` (cellpose rescales z by it); a config without a voxel
size gives ``None`` (cellpose's default: isotropic). Everything else (diameter, thresholds, the model) is the
2D method's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InvalidInputError


def anisotropy(spacing: tuple[float, float, float] | None) -> float | None:
    """Cellpose's ``anisotropy``: the z voxel size over the x voxel size, or None without a voxel size."""
    if spacing is None:
        return None
    z, _, x = (float(s) for s in spacing)
    if not (z > 0 and x > 0):
        raise InvalidInputError(f"Voxel size must be positive, got {tuple(spacing)}.")
    return z / x


def volume_eval_kwargs(params: dict[str, Any], spacing, channel_axis: int | None) -> dict[str, Any]:
    """The ``eval`` keywords that select cellpose's 3D mode for a ``(Z, Y, X[, C])`` volume."""
    threshold = float(params.get("stitch_threshold", 0.0))
    if threshold < 0:
        raise InvalidInputError(f"stitch_threshold must be >= 0, got {threshold}.")
    kwargs: dict[str, Any] = {"z_axis": 0, "channel_axis": channel_axis}
    if threshold > 0:
        kwargs.update(do_3D=False, stitch_threshold=threshold)
    else:
        kwargs.update(do_3D=True, anisotropy=anisotropy(spacing))
    return kwargs


def volume_mode(params: dict[str, Any] | None) -> str:
    """``stitch`` (cellpose's own slice stitching) when ``stitch_threshold > 0``, else ``3d``."""
    return "stitch" if float((params or {}).get("stitch_threshold", 0.0)) > 0 else "3d"


def masks_to_volume(masks: Any, shape: tuple[int, int, int]) -> np.ndarray:
    """Cellpose's 3D ``masks`` as a uint32 ``(Z, Y, X)`` volume (zeros when cellpose found nothing)."""
    if masks is None or (isinstance(masks, (list, tuple)) and len(masks) == 0):
        return np.zeros(shape, np.uint32)
    masks = np.asarray(masks)
    if masks.shape != tuple(shape):
        raise ValueError(f"cellpose returned masks of shape {masks.shape}, expected {tuple(shape)}.")
    return masks.astype(np.uint32)
