"""Weights files and provenance shared by the wrappers.

Where weights live, their download and hash, which distribution is installed, seeded random weights for
tests, and the weights part of ``info()``. Imports the standard library only; torch is imported inside
the functions that need it.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..files import sha256_file


# -- weights files and provenance --------------------------------------------------------------------------
def weights_root() -> Path:
    """Folder for weights that a library does not cache itself: ``$APGBENCH_WEIGHTS_DIR`` or the user cache."""
    env = os.environ.get("APGBENCH_WEIGHTS_DIR")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "apgbench" / "weights"


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


@contextmanager
def seeded_torch(seed: int = 0):
    """Build **testing-only** random weights reproducibly: torch's CPU generator seeded, then restored.

    The caller's random state is left as it was (``torch.random.fork_rng``), so building a random model never
    changes what other code draws.
    """
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


RANDOM_WEIGHTS = "random (testing only)"


def weights_info(path: str | os.PathLike | None, random: bool = False) -> dict[str, Any]:
    """The weights part of a method's ``info()``: the file (or that the weights are random) and its sha256."""
    return {
        "weights": RANDOM_WEIGHTS if random else None if path is None else str(path),
        "weights_sha256": weights_sha256(path),
    }
