"""Verified downloads through a real localhost HTTP server: success, cache reuse, every failure mode."""

from __future__ import annotations

import socket
import time

import pytest

from apgbench.datasets.download import ChecksumError, ConnectError, DownloadError, fetch_file, mirror_url
from apgbench.datasets.schema import RemoteFile

from ._helpers import sha256

pytestmark = pytest.mark.network


@pytest.fixture
def payload(server):
    path = server.root / "data.bin"
    path.write_bytes(bytes(range(256)) * 400)
    return path


def _remote(url: str, digest: str | None, name: str = "data.bin") -> RemoteFile:
    return RemoteFile(url=url, sha256=digest, filename=name)


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_download_verifies_and_reuses_cache(server, payload, tmp_path):
    raw = tmp_path / "raw"
    remote = _remote(f"{server.url}/data.bin", sha256(payload))
    path = fetch_file(remote, raw, progress=False, retries=0, mirror="")
    assert path == raw / "data.bin" and path.read_bytes() == payload.read_bytes()
    fetch_file(remote, raw, progress=False, retries=0, mirror="")
    assert server.hits["data.bin"] == 1  # second call hashed the cached copy instead of downloading


def test_corrupted_cache_is_downloaded_again(server, payload, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "data.bin").write_bytes(b"garbage")
    fetch_file(_remote(f"{server.url}/data.bin", sha256(payload)), raw, progress=False, retries=0, mirror="")
    assert sha256(raw / "data.bin") == sha256(payload)


def test_progress_bar_counts_every_byte_against_the_content_length(server, payload, tmp_path, monkeypatch):
    """The bar the user sees when the download ends: the file's name, its size as total, all of it done."""
    from apgbench.datasets import download

    shown = []
    close = download.RichProgress.close

    def record_then_close(bar):
        shown.extend((t.description, t.completed, t.total, t.finished) for t in bar._progress.tasks)
        close(bar)

    monkeypatch.setattr(download.RichProgress, "close", record_then_close)
    path = fetch_file(
        _remote(f"{server.url}/data.bin", sha256(payload)), tmp_path, progress=True, retries=0, mirror=""
    )
    size = payload.stat().st_size
    assert path.read_bytes() == payload.read_bytes()
    assert shown == [("data.bin", size, size, True)]


def test_wrong_hash_names_file_and_both_hashes(server, payload, tmp_path):
    raw = tmp_path / "raw"
    wrong = "0" * 64
    with pytest.raises(ChecksumError) as info:
        fetch_file(_remote(f"{server.url}/data.bin", wrong), raw, progress=False, retries=0, mirror="")
    message = str(info.value)
    assert "data.bin" in message and wrong in message and sha256(payload) in message
    assert _leftovers(raw) == []  # no partial or corrupted file left anywhere in the cache


def test_truncated_download_leaves_nothing(server, payload, tmp_path):
    raw = tmp_path / "raw"
    with pytest.raises(DownloadError, match=r"data.bin.*truncated"):
        fetch_file(
            _remote(f"{server.url}/truncate/data.bin", sha256(payload)),
            raw,
            progress=False,
            retries=0,
            mirror="",
        )
    assert _leftovers(raw) == []


def test_truncated_download_without_published_hash_is_still_refused(server, payload, tmp_path):
    raw = tmp_path / "raw"
    with pytest.raises(DownloadError):
        fetch_file(
            _remote(f"{server.url}/truncate/data.bin", None), raw, progress=False, retries=0, mirror=""
        )
    assert _leftovers(raw) == []


@pytest.mark.parametrize("status, attempts", [("status500", 2), ("status404", 1)])
def test_server_errors_and_only_transient_ones_are_retried(server, payload, tmp_path, status, attempts):
    raw = tmp_path / "raw"
    with pytest.raises(DownloadError, match=f"data.bin.*answered {status[-3:]}") as info:
        fetch_file(
            _remote(f"{server.url}/{status}/data.bin", sha256(payload)),
            raw,
            progress=False,
            retries=1,
            mirror="",
        )
    assert server.hits[f"{status}/data.bin"] == attempts  # 404 is not retried, 500 is
    assert not isinstance(info.value, ConnectError) and info.value.kind == f"http-{status[-3]}xx"
    assert _leftovers(raw) == []


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_connection_refused_is_named_and_not_retried(tmp_path):
    port = _closed_port()
    start = time.monotonic()
    with pytest.raises(
        ConnectError, match=f"127.0.0.1 refused the connection \\(nothing listens on port {port}\\)"
    ) as info:
        fetch_file(
            _remote(f"http://127.0.0.1:{port}/data.bin", None), tmp_path, progress=False, retries=3, mirror=""
        )
    assert info.value.kind == "refused" and time.monotonic() - start < 1.0  # no 1 + 2 + 3 s of retries
    assert "timed out" not in str(info.value) and "DNS" not in str(info.value)


def test_dns_failure_is_named(tmp_path):
    with pytest.raises(
        ConnectError, match=r"'nonexistent.invalid' could not be resolved \(DNS failure"
    ) as info:
        fetch_file(
            _remote("http://nonexistent.invalid/data.bin", None),
            tmp_path,
            progress=False,
            retries=3,
            mirror="",
        )
    assert info.value.kind == "dns" and "refused" not in str(info.value)


@pytest.mark.parametrize("mode", ["silent", "stall"])
def test_read_timeout_is_named_and_retried(server, payload, tmp_path, mode):
    raw = tmp_path / "raw"
    with pytest.raises(
        DownloadError, match=r"sent nothing for 0.4 s \(read timeout\).*after 2 attempts"
    ) as info:
        fetch_file(
            _remote(f"{server.url}/{mode}/data.bin", sha256(payload)),
            raw,
            progress=False,
            retries=1,
            mirror="",
            timeout=0.4,
        )
    assert info.value.kind == "read-timeout" and not isinstance(info.value, ConnectError)
    assert server.hits[f"{mode}/data.bin"] == 2 and _leftovers(raw) == []


def test_retry_recovers_from_a_transient_error(server, payload, tmp_path):
    path = fetch_file(
        _remote(f"{server.url}/flaky/data.bin", sha256(payload)),
        tmp_path,
        progress=False,
        retries=1,
        mirror="",
    )
    assert sha256(path) == sha256(payload) and server.hits["flaky/data.bin"] == 2


def test_mirror_rule():
    url = "https://zenodo.org/records/1/files/a.zip?download=1"
    assert (
        mirror_url(url, "https://m.example.org/apg/")
        == "https://m.example.org/apg/zenodo.org/records/1/files/a.zip?download=1"
    )
    assert mirror_url(url, "") == url


def test_mirror_from_environment_is_used(server, payload, tmp_path, monkeypatch):
    # The original host does not resolve; only the mirror (the local server) can deliver the file.
    (server.root / "data.invalid" / "files").mkdir(parents=True)
    payload.rename(server.root / "data.invalid" / "files" / "data.bin")
    monkeypatch.setenv("APGBENCH_MIRROR", server.url)
    remote = _remote(
        "https://data.invalid/files/data.bin?download=1",
        sha256(server.root / "data.invalid" / "files" / "data.bin"),
    )
    path = fetch_file(remote, tmp_path, progress=False, retries=0)
    assert path.exists() and server.hits["data.invalid/files/data.bin"] == 1
