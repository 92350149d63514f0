"""Input handling shared by the foundation-model wrappers, in one place.

Every method receives an image as stored by its dataset: ``(H, W)`` grey or ``(H, W, C)`` with C = 2 or 3,
any numeric dtype. Each library wants something else (SAM: uint8 RGB; Cellpose: float, channels last;
CellSAM: ``(blank, nuclear, whole-cell)``; SAM3: a PIL image). The conversions live here so that the
convention for two-channel images is decided once:

**Two-channel images are (whole-cell, nucleus)**, Cellpose's ``[cytoplasm, nucleus]`` order (TissueNet-style
data is prepared this way).

The module also holds the tiling helper for models with a fixed object budget (SAM3: 200 queries), and the
small file helpers the wrappers use for weights. It imports numpy and the standard library only.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import os
from dataclasses import dataclass
from pathlib import Path

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
        return np.concatenate([image, np.zeros(image.shape[:2] + (1,), np.uint8)], axis=-1)
    return np.ascontiguousarray(image[..., :3])


def to_pil_rgb(image: np.ndarray):
    """A PIL RGB image (SAM3's processor reads the size of numpy input wrongly, so it gets PIL)."""
    from PIL import Image  # pillow is a dependency of torchvision and of every SAM package

    return Image.fromarray(to_rgb_uint8(image))


def to_channels_last(image: np.ndarray) -> np.ndarray:
    """Float32 ``(H, W)`` or ``(H, W, C)`` for Cellpose 4, which normalises each channel itself."""
    return np.ascontiguousarray(to_float(image))


def to_cellsam(image: np.ndarray) -> np.ndarray:
    """Float32 ``(H, W, 3)`` in CellSAM's order ``(blank, nuclear, whole-cell)``; RGB stays RGB.

    A grey image goes into the last channel, where CellSAM's own ``format_image_shape`` puts one channel
    (passing it 2D to ``cellsam_pipeline`` would let its channel-wise min-max touch image columns 0-2).
    Two channels (whole-cell, nucleus) become ``(0, nucleus, whole-cell)``.
    """
    image = to_float(image)
    out = np.zeros(image.shape[:2] + (3,), dtype=np.float32)
    if image.ndim == 2:
        out[..., 2] = image
    elif image.shape[-1] == 2:
        out[..., 1], out[..., 2] = image[..., 1], image[..., 0]
    else:
        out[:] = image[..., :3]
    return out


# -- tiling for models with an object budget ---------------------------------------------------------------
@dataclass(frozen=True)
class Region:
    """A tile of an image: ``tile`` is what the model sees, ``core`` the part whose objects the tile owns.

    Both are ``(row0, row1, col0, col1)`` in image coordinates; the cores of sibling tiles partition
    their parent's core, so every object is kept by exactly one tile (the one holding its centroid).
    """

    tile: tuple[int, int, int, int]
    core: tuple[int, int, int, int]

    @property
    def slices(self) -> tuple[slice, slice]:
        """The tile as numpy slices."""
        r0, r1, c0, c1 = self.tile
        return slice(r0, r1), slice(c0, c1)


def whole_image(shape: tuple[int, ...]) -> Region:
    """The region covering the full image."""
    return Region((0, shape[0], 0, shape[1]), (0, shape[0], 0, shape[1]))


def split_region(region: Region, shape: tuple[int, ...], overlap: int) -> list[Region]:
    """Split ``region``'s core into 2x2 sub-cores; each child's tile is its core grown by ``overlap``.

    Cores are split at their midpoints (a side of one pixel is not split), tiles are clipped to ``shape``.
    """
    r0, r1, c0, c1 = region.core
    rows = [(r0, r1)] if r1 - r0 < 2 else [(r0, (r0 + r1) // 2), ((r0 + r1) // 2, r1)]
    cols = [(c0, c1)] if c1 - c0 < 2 else [(c0, (c0 + c1) // 2), ((c0 + c1) // 2, c1)]
    children = []
    for a, b in rows:
        for c, d in cols:
            tile = (
                max(a - overlap, 0),
                min(b + overlap, shape[0]),
                max(c - overlap, 0),
                min(d + overlap, shape[1]),
            )
            children.append(Region(tile, (a, b, c, d)))
    return children


def centroid_in_core(mask: np.ndarray, region: Region) -> bool:
    """Whether the centroid of ``mask`` (given in tile coordinates) lies in ``region``'s core."""
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return False
    row, col = rows.mean() + region.tile[0], cols.mean() + region.tile[2]
    r0, r1, c0, c1 = region.core
    return r0 <= row < r1 and c0 <= col < c1


# -- weights files and provenance --------------------------------------------------------------------------
def weights_root() -> Path:
    """Folder for weights that a library does not cache itself: ``$APGBENCH_WEIGHTS_DIR`` or the user cache."""
    env = os.environ.get("APGBENCH_WEIGHTS_DIR")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "apgbench" / "weights"


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_sha256(path: str | os.PathLike | None) -> str | None:
    """sha256 of a weights file for provenance, hashed once per file version; None if there is no file."""
    if path is None or not Path(path).is_file():
        return None
    stat = Path(path).stat()
    return _cached_sha256(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=32)
def _cached_sha256(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(path)  # size and mtime are part of the key, so a replaced file is hashed again


def dist_version(name: str) -> str | None:
    """Installed version of distribution ``name``, or None."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


# The distributions that write the ``segment_anything`` package (cellpose 4 and cellSAM pull in Meta's).
SAM_DISTRIBUTIONS = ("segment-anything-py", "segment-anything")


def owning_distribution(module: str, probe: str, candidates: tuple[str, ...] = ()) -> str | None:
    """Which installed distribution wrote ``module``'s files, with its version (``"name==x.y"``).

    Several distributions can install the same import package (``segment-anything`` and
    ``segment-anything-py`` both write ``segment_anything/``); the last one installed wins. The winner is
    the distribution whose RECORD hash of ``<module>/<probe>`` matches the file on disk. ``candidates``
    (distribution names) skips the slow scan of every installed distribution.
    """
    import base64

    names = candidates or importlib.metadata.packages_distributions().get(module, [])
    for name in dict.fromkeys(names):
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        for entry in dist.files or ():
            if entry.as_posix() == f"{module}/{probe}" and entry.hash is not None:
                try:
                    data = Path(dist.locate_file(entry)).read_bytes()
                except OSError:
                    continue
                digest = base64.urlsafe_b64encode(hashlib.new(entry.hash.mode, data).digest()).rstrip(b"=")
                if digest.decode() == entry.hash.value:
                    return f"{name}=={dist.version}"
    return None


def resolve_checkpoint(explicit: str | os.PathLike | None, default: Path, url: str, method: str) -> Path:
    """The weights file to load: ``explicit`` if given, else ``default``, downloading ``url`` there if absent.

    Raises
    ------
    MethodUnavailableError
        If the file is missing and cannot be downloaded; the message names the file and its URL.
    """
    from .base import MethodUnavailableError

    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise MethodUnavailableError(f"Method '{method}': checkpoint {path} does not exist.")
        return path
    if default.is_file():
        return default
    try:
        import torch.hub

        default.parent.mkdir(parents=True, exist_ok=True)
        partial = default.with_name(default.name + ".part")
        torch.hub.download_url_to_file(url, str(partial), progress=True)
        partial.replace(default)  # never leave a half-written file under the final name
    except Exception as err:
        raise MethodUnavailableError(
            f"Method '{method}' needs the weights file {default}, which is missing and could not be "
            f"downloaded from {url} ({type(err).__name__}: {err}). Download it by hand and place it there "
            f"(or set APGBENCH_WEIGHTS_DIR, or pass checkpoint=PATH)."
        ) from err
    return default
