"""Format readers: turn an unpacked dataset folder into a sorted list of lazily loaded entries.

A reader is a function ``reader(root, **options) -> list[Entry]`` registered under the name used in a
dataset config's ``format.reader``. Entries come in a deterministic (natural-sort) order; each one loads its
``(image, labels)`` only when asked, so preparing a large dataset holds one image (or volume) at a time.

Readers: ``image-folder`` (paired image/label files, also CTC and repository layouts), ``hdf5``, ``zarr``,
``npz``, ``npy-stack``, ``npy-pairs``, ``tiff-timepoints``, ``coco``, ``xml-polygons``, ``geojson``,
``instance-mask-files``.
"""

from __future__ import annotations

from collections.abc import Callable

from ...config import Registry
from ...errors import InvalidInputError
from ._base import Entry, ReaderError

Reader = Callable[..., list[Entry]]
#: The registered readers (no listing command: an unknown name's error lists them all).
READERS: Registry[Reader] = Registry("reader", listing="")


def register_reader(name: str) -> Callable[[Reader], Reader]:
    """Decorator registering a reader function under ``name``."""

    def wrap(func: Reader) -> Reader:
        if name in READERS:
            raise InvalidInputError(f"Reader '{name}' is registered twice.")
        return READERS.add(name, func)

    return wrap


def get_reader(name: str) -> Reader:
    """The reader registered as ``name``; an unknown name raises ``UnknownIdError`` (a ``KeyError``)
    suggesting close names and listing the known ones.
    """
    return READERS.get(name)


def reader_names() -> list[str]:
    """Names of all registered readers."""
    return sorted(READERS.names())


from . import containers, folders, polygons  # noqa: F401  (modules register their readers)

__all__ = ["READERS", "Entry", "ReaderError", "get_reader", "reader_names", "register_reader"]
