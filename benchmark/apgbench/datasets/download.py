"""Verified downloads of raw dataset files, streamed with requests behind a rich progress bar.

Every file lands in ``<data_root>/<id>/raw/<filename>``. It streams into a hidden temporary file in the same
folder, its sha256 is checked and only then is it renamed, so a partial or corrupted download never sits under
the final name and never replaces a file. A file already in the cache is re-hashed and fetched again if it does
not match. Errors say what really happened (DNS failure, refused connection, read timeout, HTTP status, ...)
and only transient ones are retried.

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

import errno
import hashlib
import os
import socket
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import UnavailableError
from ..files import sha256_file
from .schema import RemoteFile

#: Environment variable naming a mirror base URL.
MIRROR_ENV = "APGBENCH_MIRROR"


#: Suffix of temporary files (unfinished downloads, imports, extractions).
PARTIAL_SUFFIX = ".partial"


class DownloadError(UnavailableError):
    """A file could not be downloaded; ``kind`` names the cause (see :func:`classify_error`)."""

    def __init__(self, message: str, *, kind: str = "other", url: str = "") -> None:
        super().__init__(message)
        self.kind, self.url = kind, url
        self.retry = kind in _RETRIED


class ConnectError(DownloadError):
    """The server was never reached (DNS failure, refused, unreachable, connect timeout)."""


class ChecksumError(DownloadError):
    """A downloaded or provided file does not hash to the expected sha256."""

    def __init__(self, filename: str, expected: str, actual: str, hint: str = "") -> None:
        self.filename, self.expected, self.actual = filename, expected, actual
        super().__init__(
            f"Checksum mismatch for '{filename}': expected sha256 {expected} but got {actual}.{hint}",
            kind="checksum",
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
    """A rich download bar with tqdm's small interface (``total``, ``update``, ``reset``, ``close``)."""

    def __init__(self, description: str) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._progress = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            transient=False,
        )
        self._task = self._progress.add_task(description, total=None)
        self._started = False
        self._total: int | None = None

    @property
    def total(self) -> int | None:
        """Bytes expected (None while unknown)."""
        return self._total

    @total.setter
    def total(self, value: int) -> None:
        # Set from Content-Length (0 when unknown) before the first chunk of each attempt.
        self._total = value or None
        if not self._started:
            self._progress.start()
            self._started = True
        self._progress.update(self._task, total=self._total)

    def update(self, n: int) -> None:
        """Advance by ``n`` bytes."""
        self._progress.advance(self._task, n)

    def reset(self) -> None:
        """Start the bar again (a retry)."""
        self._progress.reset(self._task, total=self._total)

    def close(self) -> None:
        """Stop drawing the bar."""
        if self._started:
            self._progress.stop()
            self._started = False


def partial_downloads(raw_dir: str | os.PathLike, filename: str = "*") -> list[Path]:
    """Temporary files of unfinished downloads in ``raw_dir`` (of one file name, or of all)."""
    return sorted(Path(raw_dir).glob(f".{filename}.*{PARTIAL_SUFFIX}"))


def fetch_file(
    remote: RemoteFile,
    raw_dir: str | os.PathLike,
    *,
    mirror: str | None = None,
    retries: int = 3,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download one file into ``raw_dir`` (or reuse a cached copy whose hash matches).

    The bytes stream into a hidden temporary file ``.<filename>.<random>.partial`` next to the target, are
    hashed, and only then renamed to ``<filename>``: a failed download never replaces a file, and the
    temporary files of a killed download are deleted by the next call for the same file. Callers that may run
    concurrently on one folder hold a lock (``manage`` does).

    Parameters
    ----------
    remote : RemoteFile
        URL, expected sha256 (``None`` where the source publishes none) and cache file name.
    raw_dir : path
        Folder for raw downloads, usually ``<data_root>/<id>/raw``.
    mirror : str, optional
        Mirror base URL (see :func:`mirror_url`); ``None`` reads ``$APGBENCH_MIRROR``.
    retries : int
        Extra attempts after a transient error: a 5xx/408/429 answer, a timeout, a broken connection or a
        checksum mismatch (waits 1 s, 2 s, ... in between). DNS failures, refused or unreachable connections
        and other 4xx answers (404) are not retried: they do not go away within seconds.
    progress : bool
        Show a rich progress bar.
    timeout : float
        Seconds to wait for the server to answer (connecting waits at most 15 s of it).

    Returns
    -------
    Path
        The verified file.

    Raises
    ------
    ChecksumError
        The downloaded bytes do not hash to ``remote.sha256``; nothing is left under the final name.
    ConnectError
        The server could not be reached (DNS, refused, unreachable, connect timeout); ``.kind`` says which.
    DownloadError
        Any other network or server error, with the real cause in the message and in ``.kind``.
    """
    raw_dir = Path(raw_dir)
    raw_dir.mkdir(parents=True, exist_ok=True)
    for stale in partial_downloads(raw_dir, remote.filename):
        stale.unlink(missing_ok=True)
    target = raw_dir / remote.filename
    if target.is_file() and (remote.sha256 is None or sha256_file(target) == remote.sha256):
        return target
    url = mirror_url(remote.url, mirror)
    bar = RichProgress(remote.filename) if progress else None
    try:
        for attempt in range(retries + 1):
            fd, name = tempfile.mkstemp(prefix=f".{remote.filename}.", suffix=PARTIAL_SUFFIX, dir=raw_dir)
            os.close(fd)
            tmp = Path(name)
            try:
                error = _attempt(url, tmp, remote, timeout, bar)
                if error is None:
                    os.replace(tmp, target)
                    return target
            finally:
                tmp.unlink(missing_ok=True)
            if not error.retry or attempt == retries:
                if not isinstance(error, ChecksumError) and attempt:
                    error.args = (f"{error.args[0][:-1]} (after {attempt + 1} attempts).",)
                raise error
            time.sleep(min(attempt + 1, 10))
    finally:
        if bar:
            bar.close()
    raise AssertionError("unreachable")  # pragma: no cover


def _attempt(url: str, tmp: Path, remote: RemoteFile, timeout: float, bar) -> DownloadError | None:
    """One download into ``tmp``, hashed while it streams; the error to raise or retry, or ``None``."""
    import requests

    digest = hashlib.sha256()
    try:
        # The response is a context manager so that an error answer never leaks its socket.
        with requests.get(url, stream=True, timeout=(min(15.0, timeout), timeout)) as response:
            response.raise_for_status()
            if bar:
                bar.total = int(response.headers.get("content-length", 0))
                bar.reset()  # a retry starts the bar again
            with open(tmp, "wb") as handle:
                for chunk in response.iter_content(chunk_size=1 << 20):
                    handle.write(chunk)
                    digest.update(chunk)
                    if bar:
                        bar.update(len(chunk))
    except requests.exceptions.RequestException as err:
        kind, reason = classify_error(err, url, timeout)
        cls = ConnectError if kind in CONNECT_KINDS else DownloadError
        error = cls(f"Downloading '{remote.filename}' from {url} failed: {reason}.", kind=kind, url=url)
        error.__cause__ = err
        return error
    if remote.sha256 and digest.hexdigest() != remote.sha256:
        return ChecksumError(
            remote.filename,
            remote.sha256,
            digest.hexdigest(),
            f" The file from {url} is corrupted or changed at the source; the download was deleted.",
        )
    return None


#: Error kinds meaning "the server was never reached": signs of a machine without network.
CONNECT_KINDS = frozenset({"dns", "refused", "unreachable", "connect-timeout"})
#: Error kinds worth another attempt (a transfer can corrupt bytes: a changed file fails again and is reported).
_RETRIED = frozenset({"read-timeout", "truncated", "reset", "http-5xx", "checksum", "other"})


def _chain(err: BaseException) -> list[BaseException]:
    """``err`` and every exception it wraps (causes, contexts, urllib3's ``reason``, exception args)."""
    seen: list[BaseException] = []
    stack = [err]
    while stack:
        item = stack.pop()
        if not isinstance(item, BaseException) or any(item is s for s in seen):
            continue
        seen.append(item)
        stack.extend([item.__cause__, item.__context__, getattr(item, "reason", None), *item.args])
    return seen


def classify_error(err: Exception, url: str, timeout: float | None = None) -> tuple[str, str]:
    """The kind and a short cause of a requests error (their messages repeat the URL and nest exceptions).

    Returns
    -------
    (kind, reason)
        ``kind`` is one of ``dns``, ``refused``, ``unreachable``, ``connect-timeout``, ``read-timeout``,
        ``truncated``, ``reset``, ``http-4xx``, ``http-5xx``, ``ssl``, ``other``.
    """
    import requests
    import urllib3.exceptions as u3

    parts = urlsplit(url)
    host, port = parts.hostname or parts.netloc, parts.port or (443 if parts.scheme == "https" else 80)
    after = f" after {timeout:g} s" if timeout else ""
    chain = _chain(err)
    response = getattr(err, "response", None)
    if isinstance(err, requests.exceptions.HTTPError) and response is not None:
        code = response.status_code
        kind = "http-5xx" if code >= 500 or code in (408, 429) else "http-4xx"
        return kind, f"the server answered {code} {response.reason}"
    if any(isinstance(e, (u3.NameResolutionError, socket.gaierror)) for e in chain):
        return (
            "dns",
            f"the host name '{host}' could not be resolved (DNS failure: no network or a wrong host name)",
        )
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return "refused", f"{host} refused the connection (nothing listens on port {port})"
    if any(isinstance(e, OSError) and e.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH) for e in chain):
        return "unreachable", f"{host} is unreachable (no network route)"
    if isinstance(err, requests.exceptions.ConnectTimeout) or any(
        isinstance(e, u3.ConnectTimeoutError) for e in chain
    ):
        return "connect-timeout", f"connecting to {host} timed out{after}"
    if isinstance(err, requests.exceptions.ReadTimeout) or any(
        isinstance(e, u3.ReadTimeoutError) for e in chain
    ):
        waited = f"for {timeout:g} s" if timeout else "too long"
        return "read-timeout", f"{host} accepted the connection but then sent nothing {waited} (read timeout)"
    if isinstance(err, requests.exceptions.SSLError):
        return "ssl", f"the secure connection to {host} failed ({_short(err)})"
    if isinstance(err, requests.exceptions.ChunkedEncodingError) or any(
        isinstance(e, u3.IncompleteRead) for e in chain
    ):
        return "truncated", "the connection broke before the whole file arrived (truncated download)"
    if any(isinstance(e, ConnectionResetError) for e in chain):
        return "reset", f"{host} reset the connection"
    return "other", _short(err)


def _short(err: Exception) -> str:
    text = str(err).strip() or type(err).__name__
    return text if len(text) < 200 else text[:197] + "..."
