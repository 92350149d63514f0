"""Opt-in on-disk cache of a model stage's output (µSAM: image embeddings + decoder maps), ``--cache-embeddings``.

An entry is keyed by everything the stage's output depends on: the weights' hash, the model name, the input
conversion, the tiling, the precision and the image's bytes (its SHA-256). Entries are ``.npz`` files written
to a temporary name and renamed into place (atomic); a file that cannot be read (torn, truncated, foreign)
is deleted and recomputed. The folder is capped in size: after each write the least recently used entries
(by modification time, refreshed on every hit) are removed until it fits.

Activate it for a block with :func:`use_cache`; methods ask :func:`active_cache`. A re-run with other APG /
AIS parameters then skips the encoder and the decoder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidInputError

DEFAULT_MAX_GB = 20.0
_ACTIVE: list[EmbeddingCache] = []


class EmbeddingCache:
    """A size-capped folder of cached model-stage outputs.

    Parameters
    ----------
    folder : path
        Where the entries live (created on first write).
    max_gb : float
        Size cap; least recently used entries are evicted beyond it.
    """

    def __init__(self, folder: str | os.PathLike, max_gb: float = DEFAULT_MAX_GB) -> None:
        if not max_gb > 0:
            raise InvalidInputError(f"The embedding cache size cap must be positive, got {max_gb!r} GB.")
        self.folder, self.max_bytes = Path(folder), int(max_gb * 2**30)
        self.hits = self.misses = 0

    @staticmethod
    def key(image: np.ndarray, **provenance: Any) -> str:
        """The entry name for ``image`` under ``provenance`` (weights hash, model, conversion, tiling...)."""
        image = np.ascontiguousarray(image)
        digest = hashlib.sha256(json.dumps(provenance, sort_keys=True, default=str).encode())
        digest.update(f"{image.dtype.str}{image.shape}".encode())
        digest.update(memoryview(image).cast("B"))
        return digest.hexdigest()

    def get(self, key: str) -> dict[str, np.ndarray] | None:
        """The stored arrays, or None (missing, or corrupt: then the file is deleted)."""
        path = self.folder / f"{key}.npz"
        try:
            with np.load(path, allow_pickle=False) as entry:
                arrays = {name: entry[name] for name in entry.files}
        except FileNotFoundError:
            self.misses += 1
            return None
        except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError):
            path.unlink(missing_ok=True)  # torn or foreign: recompute
            self.misses += 1
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # LRU: a hit makes the entry recent
        self.hits += 1
        return arrays

    def put(self, key: str, arrays: dict[str, np.ndarray]) -> None:
        """Store ``arrays`` atomically, then evict least recently used entries beyond the cap."""
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{key}.{os.getpid()}.tmp.npz"
        try:
            np.savez(tmp, **arrays)
            os.replace(tmp, self.folder / f"{key}.npz")
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self.evict()

    def evict(self) -> None:
        """Remove the oldest entries until the folder is within its cap."""
        entries = []
        for path in self.folder.glob("*.npz"):
            with contextlib.suppress(OSError):
                stat = path.stat()
                entries.append((stat.st_mtime, stat.st_size, path))
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries, key=lambda e: e[0]):
            if total <= self.max_bytes:
                break
            path.unlink(missing_ok=True)
            total -= size


@contextlib.contextmanager
def use_cache(
    folder: str | os.PathLike | None, max_gb: float = DEFAULT_MAX_GB
) -> Iterator[EmbeddingCache | None]:
    """Make a cache in ``folder`` active for the block (None: no cache)."""
    if folder is None:
        yield None
        return
    cache = EmbeddingCache(folder, max_gb)
    _ACTIVE.append(cache)
    try:
        yield cache
    finally:
        _ACTIVE.remove(cache)


def active_cache() -> EmbeddingCache | None:
    """The innermost active cache, or None."""
    return _ACTIVE[-1] if _ACTIVE else None


def within_cache(folder: str | os.PathLike | None, max_gb: float, items: Iterator) -> Iterator:
    """Yield from ``items`` (a lazy run) with a cache in ``folder`` active while it runs (None: no cache)."""
    with use_cache(folder, max_gb):
        yield from items
