"""Verified downloads of raw dataset files, through pooch.

Every file lands in ``<data_root>/<id>/raw/<filename>``. pooch streams it into a temporary file in the same
folder, checks its sha256 and only then renames it, so a partial or corrupted download never sits under the
final name. A file already in the cache is re-hashed and fetched again if it does not match.

Mirrors
-------
``--mirror BASE`` or ``$APGBENCH_MIRROR`` rewrites every download URL to ``BASE/<host>/<path>[?query]``:
the original host becomes the first path component under the mirror, so one mirror can hold the files of
every source host without name clashes. Example: with ``BASE=https://data.example.org/apgbench``,
``https://zenodo.org/records/1/files/a.zip`` is fetched from
``https://data.example.org/apgbench/zenodo.org/records/1/files/a.zip``. Checksums stay those of the
original files.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from urllib.parse import urlsplit

from .schema import RemoteFile

#: Environment variable naming a mirror base URL.
MIRROR_ENV = "APGBENCH_MIRROR"


class DownloadError(RuntimeError):
    """A file could not be downloaded (network or server error, after retries)."""


class ChecksumError(DownloadError):
    """A downloaded or provided file does not hash to the expected sha256."""

    def __init__(self, filename: str, expected: str, actual: str, hint: str = "") -> None:
        self.filename, self.expected, self.actual = filename, expected, actual
        super().__init__(
            f"Checksum mismatch for '{filename}': expected sha256 {expected} but got {actual}.{hint}"
        )


def mirror_url(url: str, mirror: str | None = None) -> str:
    """Rewrite ``url`` onto a mirror: ``<mirror>/<host>/<path>[?query]`` (see module docstring).

    Parameters
    ----------
    url : str
        Original download URL.
    mirror : str, optional
        Mirror base URL; ``None`` reads ``$APGBENCH_MIRROR``; empty means no mirror.

    Returns
    -------
    str
        The URL to fetch.
    """
    mirror = os.environ.get(MIRROR_ENV, "") if mirror is None else mirror
    if not mirror:
        return url
    parts = urlsplit(url)
    rewritten = f"{mirror.rstrip('/')}/{parts.netloc}{parts.path}"
    return f"{rewritten}?{parts.query}" if parts.query else rewritten


class RichProgress:
    """Adapter giving pooch's downloader a rich progress bar (pooch expects tqdm's small interface)."""

    def __init__(self, description: str) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._progress = Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                                  TransferSpeedColumn(), TimeRemainingColumn(), transient=False)
        self._task = self._progress.add_task(description, total=None)
        self._started = False
        self._total: int | None = None

    @property
    def total(self) -> int | None:
        return self._total

    @total.setter
    def total(self, value: int) -> None:
        # pooch sets the total from Content-Length (0 when unknown) before the first chunk.
        self._total = value or None
        if not self._started:
            self._progress.start()
            self._started = True
        self._progress.update(self._task, total=self._total)

    def update(self, n: int) -> None:
        self._progress.advance(self._task, n)

    def reset(self) -> None:
        self._progress.reset(self._task, total=self._total)

    def close(self) -> None:
        if self._started:
            self._progress.stop()
            self._started = False


def fetch_file(remote: RemoteFile, raw_dir: str | os.PathLike, *, mirror: str | None = None, retries: int = 3,
               progress: bool = True, timeout: float = 60.0) -> Path:
    """Download one file into ``raw_dir`` (or reuse a cached copy whose hash matches).

    Parameters
    ----------
    remote : RemoteFile
        URL, expected sha256 (``None`` where the source publishes none) and cache file name.
    raw_dir : path
        Folder for raw downloads, usually ``<data_root>/<id>/raw``.
    mirror : str, optional
        Mirror base URL (see :func:`mirror_url`); ``None`` reads ``$APGBENCH_MIRROR``.
    retries : int
        Extra attempts after a network error or a checksum mismatch (waits 1 s, 2 s, ... in between).
    progress : bool
        Show a rich progress bar.
    timeout : float
        Seconds to wait for the server to answer.

    Returns
    -------
    Path
        The verified file.

    Raises
    ------
    ChecksumError
        The downloaded bytes do not hash to ``remote.sha256``; nothing is left under the final name.
    DownloadError
        Network or server error after all retries.
    """
    import pooch
    import requests

    raw_dir = Path(raw_dir)
    raw_dir.mkdir(parents=True, exist_ok=True)
    url = mirror_url(remote.url, mirror)
    known = f"sha256:{remote.sha256}" if remote.sha256 else None
    registry = pooch.create(path=raw_dir, base_url="", registry={remote.filename: known},
                            urls={remote.filename: url}, retry_if_failed=retries)
    bar = RichProgress(remote.filename) if progress else False
    downloader = pooch.HTTPDownloader(progressbar=bar, timeout=timeout)
    pooch.get_logger().setLevel(logging.WARNING)  # the progress bar and our errors say what happens
    try:
        return Path(registry.fetch(remote.filename, downloader=downloader))
    except ValueError as err:
        if "hash" not in str(err).lower():
            raise
        actual = str(err).split("but got ")[-1].split(".")[0].strip()
        raise ChecksumError(remote.filename, remote.sha256 or "", actual,
                            f" The file from {url} is corrupted or changed at the source; the partial download "
                            "was deleted.") from err
    except requests.exceptions.RequestException as err:
        raise DownloadError(f"Downloading '{remote.filename}' from {url} failed after {retries + 1} "
                            f"attempt(s): {_reason(err, url)}.") from err
    finally:
        if bar:
            bar.close()


def _reason(err: Exception, url: str) -> str:
    """A short cause for a requests error (their messages repeat the URL and nest several exceptions)."""
    import requests

    host = urlsplit(url).netloc
    response = getattr(err, "response", None)
    if isinstance(err, requests.exceptions.HTTPError) and response is not None:
        return f"the server answered {response.status_code} {response.reason}"
    if isinstance(err, requests.exceptions.Timeout):
        return f"{host} did not answer in time"
    if isinstance(err, requests.exceptions.ChunkedEncodingError):
        return "the connection broke before the whole file arrived (truncated download)"
    if isinstance(err, requests.exceptions.ConnectionError):
        return f"cannot connect to {host} (no network, DNS failure or host down)"
    text = str(err).strip() or type(err).__name__
    return text if len(text) < 200 else text[:197] + "..."
