"""Which file in a folder holds the label image of an image id: the naming rules other tools follow.

Segmentation tools write their label images next to the inputs under the input's name plus a suffix. A file
``<stem><suffix><extension>`` is matched to the image id ``stem`` by these rules (:data:`LABEL_RULES`):

==============  =============================  =====================================================
suffix          extensions                     written by
==============  =============================  =====================================================
``_cp_masks``   .png .tif .tiff                Cellpose ``--save_png`` / ``--save_tif``
``_seg``        .npy                           Cellpose's ``_seg.npy`` (a dict; its ``masks`` entry)
``_masks``      .tif .tiff .png .npy           Cellpose ``io.save_masks``, many scripts
``_mask``       .tif .tiff .png .npy           common export name
``_labels``     .tif .tiff .png .npy           StarDist / napari exports
``_label``      .tif .tiff .png .npy           this project's shared samples, Fiji exports
``_pred``       .tif .tiff .png .npy           common export name
``_prediction`` .tif .tiff .png .npy           common export name
(none)          .tif .tiff .png .npy           the plain stem: ``<image_id>.tif``
==============  =============================  =====================================================

A plain-stem file is only a candidate when no suffixed file matches the same id: next to ``X_cp_masks.png``,
``X.tif`` is the input image the tool read, never a prediction. When a file's stem is itself an image id it
is that id's plain-stem file, even if it also ends in a suffix (ids ``a`` and ``a_masks``). Several candidates
for one id are ambiguous unless they hold the same label image (Cellpose writes ``_cp_masks.png`` and
``_seg.npy`` with the same masks); the caller decides (:func:`candidates` only lists them).

This module imports nothing from apgbench, so datasets read from a folder can use the same rules.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import InvalidInputError

IMAGE_EXTENSIONS = (".tif", ".tiff", ".png", ".npy")
#: (suffix, extensions) in the order the table above gives them; longer suffixes are tried first.
LABEL_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("_cp_masks", (".png", ".tif", ".tiff")),
    ("_seg", (".npy",)),
    ("_masks", IMAGE_EXTENSIONS),
    ("_mask", IMAGE_EXTENSIONS),
    ("_labels", IMAGE_EXTENSIONS),
    ("_label", IMAGE_EXTENSIONS),
    ("_pred", IMAGE_EXTENSIONS),
    ("_prediction", IMAGE_EXTENSIONS),
)


@dataclass
class Candidates:
    """The files of a folder that may hold one image id's labels: by a suffix rule, or by the plain stem."""

    suffixed: list[Path] = field(default_factory=list)
    plain: list[Path] = field(default_factory=list)

    @property
    def files(self) -> list[Path]:
        """The files to consider: the suffixed ones if any (the plain stem is then the input image), else the
        plain-stem ones.
        """
        return self.suffixed or self.plain


def split_name(name: str) -> tuple[str, str] | None:
    """``(stem, extension)`` of a file name with a readable extension, or None."""
    lower = name.lower()
    for extension in sorted(IMAGE_EXTENSIONS, key=len, reverse=True):
        if lower.endswith(extension) and len(name) > len(extension):
            return name[: -len(extension)], extension
    return None


def candidates(folder: str | os.PathLike, image_ids) -> dict[str, Candidates]:
    """For every image id, the files of ``folder`` that match it by :data:`LABEL_RULES` (see module notes)."""
    ids = set(image_ids)
    found = {image_id: Candidates() for image_id in image_ids}
    for path in sorted(Path(folder).iterdir()):
        parts = split_name(path.name) if path.is_file() else None
        if parts is None:
            continue
        stem, extension = parts
        if stem in ids:
            found[stem].plain.append(path)
            continue
        for suffix, extensions in sorted(LABEL_RULES, key=lambda rule: len(rule[0]), reverse=True):
            if stem.endswith(suffix) and stem[: -len(suffix)] in ids and extension in extensions:
                found[stem[: -len(suffix)]].suffixed.append(path)
                break
    return found


def read_label_file(path: str | os.PathLike, ndim: int = 2) -> np.ndarray:
    """The label image in a TIFF, PNG or NPY file (Cellpose ``_seg.npy``: its ``masks``), squeezed.

    ``ndim=3`` reads a label volume (Z, Y, X) instead, for 3D test sets.

    Raises
    ------
    ValueError
        If the file holds no integer label image of ``ndim`` axes (the message names the file).
    """
    import imageio.v3 as iio
    import tifffile

    path = Path(path)
    extension = split_name(path.name)[1] if split_name(path.name) else path.suffix.lower()
    if extension == ".npy":
        try:
            labels = np.load(path, allow_pickle=False)
        except ValueError:
            if not path.name.endswith("_seg.npy"):
                raise InvalidInputError(f"{path.name} holds Python objects, not a label image.") from None
            # Cellpose's _seg.npy is a pickled dict; only this documented name is unpickled
            data = np.load(path, allow_pickle=True).item()
            if not isinstance(data, dict) or "masks" not in data:
                raise InvalidInputError(
                    f"{path.name} is not a Cellpose _seg.npy file (no 'masks' entry)."
                ) from None
            labels = np.asarray(data["masks"])
    elif extension in (".tif", ".tiff"):
        labels = tifffile.imread(path)
    else:
        labels = iio.imread(path)
    labels = np.squeeze(labels) if labels.ndim > ndim else labels
    if labels.ndim != ndim:
        raise InvalidInputError(f"{path.name} is not a {ndim}D label image (shape {labels.shape}).")
    if labels.dtype == bool or not np.issubdtype(labels.dtype, np.integer):
        raise InvalidInputError(f"{path.name} has dtype {labels.dtype}; label images must be integer.")
    return labels
