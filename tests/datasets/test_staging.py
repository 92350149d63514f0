"""A failed, broken or killed (SIGKILL) download or import never replaces a good cached copy."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

from apgbench.datasets import get_dataset_config, load_dataset
from apgbench.datasets import staging as staging_module
from apgbench.datasets.download import fetch_file, partial_downloads
from apgbench.datasets.extract import ArchiveTooLargeError, CorruptArchiveError, UnsafeArchiveError
from apgbench.datasets.manage import download_dataset, import_dataset, verify_dataset
from apgbench.datasets.readers import ReaderError
from apgbench.datasets.schema import RemoteFile

from ._helpers import disks, published, sha256, write, zip_tree

pytestmark = pytest.mark.filterwarnings("ignore:.*differs from the published file:UserWarning")

IMPORT = """
import sys
from pathlib import Path
from apgbench.datasets import get_dataset_config
from apgbench.datasets.manage import import_dataset
import_dataset(get_dataset_config("dsb"), Path(sys.argv[1]), Path(sys.argv[2]), verify=False)
"""

FETCH = """
import sys
from pathlib import Path
from apgbench.datasets.download import fetch_file
from apgbench.datasets.schema import RemoteFile
fetch_file(RemoteFile(url=sys.argv[1], filename="data.bin"), Path(sys.argv[2]), progress=False, retries=0,
           mirror="", timeout=30)
"""


def _dsb_archive(tmp_path, name, n, shape=(48, 48), broken=None):
    """A dsb2018.zip in the real layout with ``n`` images; ``broken`` spoils it in one of several ways."""
    root = tmp_path / name
    src = root / "dsb2018" / "test"
    for i in range(n):
        labels = disks(shape, 4, seed=i, radius=4)
        write(src / "images" / f"im{i}.tif", (labels * 30 + 10).astype(np.uint8))
        write(src / "masks" / f"im{i}.tif", labels)
    if broken == "unreadable":
        (src / "images" / "im0.tif").write_bytes(b"not a tiff")
    archive = zip_tree(root, tmp_path / name / "dsb2018.zip")
    if broken == "unsafe":
        with zipfile.ZipFile(archive, "a") as zf:
            zf.writestr("../../escaped.txt", b"x")
    elif broken == "truncated":
        archive.write_bytes(archive.read_bytes()[:-200])
    return archive


def _snapshot(data):
    folder = data / "dsb"
    return {
        "raw": sha256(folder / "raw" / "dsb2018.zip"),
        "prepared": sha256(folder / "prepared.h5"),
        "manifest": json.loads((folder / "manifest.json").read_text()),
    }


@pytest.fixture
def good(tmp_path):
    """A cache holding a good imported dsb (3 images) and its snapshot."""
    data = tmp_path / "data"
    import_dataset(get_dataset_config("dsb"), _dsb_archive(tmp_path, "good", 3), data, verify=False)
    return data, _snapshot(data)


@pytest.mark.parametrize(
    "broken, error",
    [
        ("truncated", CorruptArchiveError),
        ("unsafe", UnsafeArchiveError),
        ("unreadable", ReaderError),
        ("too-large", ArchiveTooLargeError),
    ],
)
def test_failed_import_keeps_the_good_copy(tmp_path, good, monkeypatch, broken, error):
    data, before = good
    if broken == "too-large":
        monkeypatch.setenv("APGBENCH_MAX_UNPACK", "2K")
    bad = _dsb_archive(tmp_path, "bad", 4, broken=None if broken == "too-large" else broken)
    with pytest.raises(error):
        import_dataset(get_dataset_config("dsb"), bad, data, verify=False)
    assert _snapshot(data) == before and not (data / "dsb" / ".staging").exists()
    assert len(load_dataset("dsb", data)) == 3 and all(
        ok for _, ok, _ in verify_dataset(get_dataset_config("dsb"), data)
    )


@pytest.mark.network
def test_failed_download_keeps_the_good_copy(tmp_path, good, server):
    data, before = good
    # The published file downloads and verifies, but its preparation fails: the imported copy must stay.
    config = published("dsb", server, {"dsb2018.zip": _dsb_archive(tmp_path, "bad", 2, broken="unreadable")})
    with pytest.raises(ReaderError, match=r"im0.tif"):
        download_dataset(config, data, force=True, progress=False, retries=0, mirror="")
    assert _snapshot(data) == before and not (data / "dsb" / ".staging").exists()
    # and a download that does work replaces the copy completely
    config = published("dsb", server, {"dsb2018.zip": _dsb_archive(tmp_path, "new", 2)})
    download_dataset(config, data, force=True, progress=False, retries=0, mirror="")
    after = _snapshot(data)
    assert after["raw"] == config.source.files[0].sha256 and after["manifest"]["n_images"] == 2
    assert all(ok for _, ok, _ in verify_dataset(config, data))


def _spawn(script, *args):
    return subprocess.Popen(
        [sys.executable, "-c", script, *map(str, args)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=os.environ.copy(),
    )


def _wait_for(path, process, timeout=90.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end and process.poll() is None:
        if path.exists():
            return True
        time.sleep(0.002)
    return path.exists()


def test_sigkill_during_import_leaves_the_old_copy(tmp_path, good):
    data, before = good
    new = _dsb_archive(tmp_path, "new", 40, shape=(128, 128))
    stage = data / "dsb" / ".staging"
    # Each phase of an import: the copy is staged, being unpacked, being prepared.
    for trigger in ("raw/dsb2018.zip", "extracted.partial", "prepared.h5.partial"):
        process = _spawn(IMPORT, new, data)
        seen = _wait_for(stage / trigger, process)
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert seen, f"the import never reached {trigger}"
        assert process.returncode == -signal.SIGKILL
        assert _snapshot(data) == before  # untouched, before any recovery
        assert all(ok for _, ok, _ in verify_dataset(get_dataset_config("dsb"), data))  # recovers
        assert not stage.exists() and len(load_dataset("dsb", data)) == 3


def test_sigkill_at_random_moments_leaves_old_or_new_state(tmp_path, good):
    data, before = good
    new = _dsb_archive(tmp_path, "new", 40, shape=(128, 128))
    rng = random.Random(0)
    outcomes = set()
    for _ in range(4):
        process = _spawn(IMPORT, new, data)
        _wait_for(data / "dsb" / ".staging", process)
        time.sleep(rng.uniform(0.0, 0.6))
        process.send_signal(signal.SIGKILL)
        process.wait()
        rows = verify_dataset(get_dataset_config("dsb"), data)
        assert rows and all(ok for _, ok, _ in rows), rows
        n = len(load_dataset("dsb", data))
        assert n in (3, 40) and not (data / "dsb" / ".staging").exists()
        snapshot = _snapshot(data)
        assert snapshot["manifest"]["n_images"] == n
        assert (snapshot == before) == (n == 3)
        outcomes.add(n)
    assert 3 in outcomes or 40 in outcomes


def test_crash_after_commit_rolls_forward(tmp_path, good, monkeypatch):
    data, before = good

    def crash(folder):
        raise KeyboardInterrupt  # dies right after writing the commit marker, before moving anything

    monkeypatch.setattr(staging_module, "_apply", crash)
    with pytest.raises(KeyboardInterrupt):
        import_dataset(get_dataset_config("dsb"), _dsb_archive(tmp_path, "new", 5), data, verify=False)
    assert _snapshot(data) == before and (data / "dsb" / ".staging" / "COMMIT").exists()
    monkeypatch.undo()
    rows = verify_dataset(get_dataset_config("dsb"), data)  # the next call finishes the committed import
    assert all(ok for _, ok, _ in rows) and len(load_dataset("dsb", data)) == 5
    assert _snapshot(data)["raw"] == sha256(tmp_path / "new" / "dsb2018.zip")


@pytest.mark.network
def test_temporary_files_of_a_killed_download_are_cleaned(tmp_path, server):
    raw = tmp_path / "raw"
    payload = server.root / "data.bin"
    payload.write_bytes(os.urandom(3 << 20))
    process = _spawn(FETCH, f"{server.url}/stall/data.bin", raw)
    end = time.monotonic() + 60
    while not partial_downloads(raw) and time.monotonic() < end and process.poll() is None:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    left = partial_downloads(raw)
    assert left and not (raw / "data.bin").exists()
    fetch_file(
        RemoteFile(url=f"{server.url}/data.bin", filename="data.bin", sha256=sha256(payload)),
        raw,
        progress=False,
        retries=0,
        mirror="",
    )
    assert not any(p.exists() for p in left) and sha256(raw / "data.bin") == sha256(payload)
    assert sorted(p.name for p in raw.iterdir()) == ["data.bin"]


def test_kept_unpacked_files_follow_the_committed_copy(tmp_path, good):
    data, _ = good
    config = get_dataset_config("dsb")
    import_dataset(config, _dsb_archive(tmp_path, "new", 2), data, verify=False, keep_extracted=True)
    kept = sorted(p.name for p in (data / "dsb" / "extracted" / "dsb2018" / "test" / "images").iterdir())
    assert kept == ["im0.tif", "im1.tif"]
    with pytest.raises(CorruptArchiveError):  # a failed import leaves the kept files too
        import_dataset(config, _dsb_archive(tmp_path, "bad", 4, broken="truncated"), data, verify=False)
    assert (data / "dsb" / "extracted" / "dsb2018" / "test" / "images" / "im1.tif").exists()
    import_dataset(config, _dsb_archive(tmp_path, "third", 3), data, verify=False)  # not kept: stale ones go
    assert not (data / "dsb" / "extracted").exists() and len(load_dataset("dsb", data)) == 3
    assert sorted(p.name for p in (data / "dsb").iterdir()) == [
        ".lock",
        "manifest.json",
        "prepared.h5",
        "raw",
    ]
