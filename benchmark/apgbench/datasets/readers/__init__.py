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

from ._base import Entry, ReaderError

Reader = Callable[..., list[Entry]]
_READERS: dict[str, Reader] = {}


def register_reader(name: str) -> Callable[[Reader], Reader]:
    """Decorator registering a reader function under ``name``."""

    def wrap(func: Reader) -> Reader:
        if name in _READERS:
            raise ValueError(f"Reader '{name}' is registered twice.")
        _READERS[name] = func
        return func

    return wrap


def get_reader(name: str) -> Reader:
    """The reader registered as ``name``; unknown names raise ``KeyError`` listing the known ones."""
    if name not in _READERS:
        raise KeyError(f"Unknown reader '{name}'; known readers: {', '.join(sorted(_READERS))}.")
    return _READERS[name]


def reader_names() -> list[str]:
    """Names of all registered readers."""
    return sorted(_READERS)


from . import containers, folders, polygons  # noqa: F401  (modules register their readers)

__all__ = ["Entry", "ReaderError", "get_reader", "reader_names", "register_reader"]
