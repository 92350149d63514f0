"""Small file helpers used across apgbench: atomic writes and sha256 digests (one definition each).

Imports nothing from apgbench, so every layer (datasets, methods, results, the runner) can use it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

#: Bytes read at a time when hashing a file.
HASH_CHUNK = 1 << 20
#: gzip level of the label images in HDF5 files (prepared datasets, stored predictions): 4 compresses
#: label images nearly as well as 9 at a fraction of the time.
H5_GZIP_LEVEL = 4


def sha256_file(path: str | os.PathLike, chunk: int = HASH_CHUNK) -> str:
    """Hex sha256 of a file, read in chunks of ``chunk`` bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def write_synced(path: str | os.PathLike, data: bytes | memoryview) -> None:
    """Write ``data`` to ``path`` and flush it to the disk (``fsync``) before returning."""
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Replace ``path`` by ``data`` atomically: a reader sees the old file or the new one, never a mix.

    The data go to a hidden temporary file next to it (``.<name>.<pid>.tmp``, synced), renamed over
    ``path``; a killed process leaves at most that temporary file, which the results store tidies up.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write_synced(tmp, data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
