"""Helpers for dataset tests: a real HTTP server on localhost and builders of archives in real layouts.

Nothing here mocks the download: files are served by ``http.server`` on 127.0.0.1 and fetched through the
real pooch/requests code path. Special URL prefixes make the server misbehave on purpose:
``/status500/...`` and ``/status404/...`` answer with that status, ``/truncate/...`` announces the full
length but sends half the bytes, ``/flaky/...`` fails once with 500 and then serves the file, ``/silent/...``
accepts the connection but answers nothing for 3 s, ``/stall/...`` sends half the bytes and then nothing for 3 s.
"""

from __future__ import annotations

import hashlib
import http.server
import shutil
import tarfile
import threading
import time
import zipfile
from pathlib import Path

import numpy as np

from apgbench.datasets import DatasetConfig, get_dataset_config
from apgbench.datasets.manage import download_dataset


class _Handler(http.server.BaseHTTPRequestHandler):
    root: Path
    hits: dict[str, int]

    def log_message(self, *args) -> None:  # keep test output clean
        return None

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].lstrip("/")
        self.hits[path] = self.hits.get(path, 0) + 1
        mode, _, rest = path.partition("/")
        if mode in ("status500", "status404"):
            self.send_error(int(mode[-3:]))
            return
        if mode == "flaky" and self.hits[path] == 1:
            self.send_error(500)
            return
        if mode == "silent":
            time.sleep(3)
            return
        target = self.root / (rest if mode in ("truncate", "flaky", "stall") else path)
        if not target.is_file():
            self.send_error(404)
            return
        data = target.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        self.wfile.write(data[: len(data) // 2] if mode in ("truncate", "stall") else data)
        if mode == "stall":
            self.wfile.flush()
            time.sleep(3)
        if mode in ("truncate", "stall"):
            self.close_connection = True


class FileServer:
    """Serves ``root`` on an ephemeral localhost port."""

    def __init__(self, root: Path) -> None:
        self.root = root
        handler = type("Handler", (_Handler,), {"root": root, "hits": {}})
        self.hits = handler.hits
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def add(self, path: Path, name: str | None = None) -> str:
        """Copy a file into the served folder; return its URL."""
        name = name or path.name
        shutil.copyfile(path, self.root / name)
        return f"{self.url}/{name}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def published(
    config: DatasetConfig | str, server: FileServer, files: dict[str, Path], *, with_hash: bool | None = None
) -> DatasetConfig:
    """The config with each source file served from ``server`` (sha256 of the built file where the real
    config has one, or always/never with ``with_hash``)."""
    config = get_dataset_config(config) if isinstance(config, str) else config
    new_files = []
    for remote in config.source.files:
        path = files[remote.filename]
        url = server.add(path, remote.filename)
        keep = remote.sha256 is not None if with_hash is None else with_hash
        new_files.append(remote.model_copy(update={"url": url, "sha256": sha256(path) if keep else None}))
    source = config.source.model_copy(update={"files": new_files})
    return config.model_copy(update={"source": source})


def fetch_and_prepare(config: DatasetConfig, data_root: Path, **kwargs):
    """The real download -> verify -> extract -> prepare path, without retries or progress bar."""
    from apgbench.datasets import load_dataset

    download_dataset(config, data_root, progress=False, retries=kwargs.pop("retries", 0), mirror="", **kwargs)
    return list(load_dataset(config, data_root))


def zip_tree(folder: Path, archive: Path) -> Path:
    """Zip every file under ``folder`` with paths relative to it."""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(folder).as_posix())
    return archive


def tar_tree(folder: Path, archive: Path) -> Path:
    with tarfile.open(archive, "w:gz") as tf:
        for path in sorted(folder.rglob("*")):
            tf.add(path, path.relative_to(folder).as_posix(), recursive=False)
    return archive


def disks(shape: tuple[int, int], n: int, seed: int = 0, radius: int = 5) -> np.ndarray:
    """Instance labels with ``n`` disks (ids 1..n) at least two pixels apart, so components stay separate."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.uint16)
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    placed = 0
    for _ in range(50 * n):
        if placed == n:
            break
        r, c = rng.integers(radius, shape[0] - radius), rng.integers(radius, shape[1] - radius)
        disk = (rows - r) ** 2 + (cols - c) ** 2 <= radius**2
        if labels[(rows - r) ** 2 + (cols - c) ** 2 <= (radius + 2) ** 2].any():
            continue
        placed += 1
        labels[disk] = placed
    if placed < n:
        raise ValueError(f"could not place {n} disks of radius {radius} in {shape}")
    return labels


def write(path: Path, array: np.ndarray) -> Path:
    """Write an array as TIFF, PNG/BMP (imageio) or NPY according to the suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix in (".tif", ".tiff"):
        import tifffile

        tifffile.imwrite(path, array)
    elif path.suffix == ".npy":
        np.save(path, array)
    else:
        import imageio.v3 as iio

        iio.imwrite(path, array)
    return path
