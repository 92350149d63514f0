"""A full disk or a read-only results root ends in one sentence naming the folder; nothing stored is lost.

ENOSPC and EROFS are injected into the store's writes (they run as root here, where chmod stops nothing), and,
where this machine lets the test mount a small tmpfs, also produced for real.
"""

from __future__ import annotations

import errno
import shutil
import subprocess
import uuid

import numpy as np
import pytest
from typer.testing import CliRunner

from apgbench.cli import app
from apgbench.results import PARTS, check_record, read_scores
from apgbench.results import writer as store

DATASET = "synthetic-nuclei"
runner = CliRunner()


def _run(*extra: str):
    return runner.invoke(app, ["run", "-d", DATASET, "-m", "classic", *extra])


def _one_sentence(result, folder) -> str:
    output = " ".join(result.output.split())
    assert result.exit_code == 1, result.output
    assert ("Traceback" not in result.output and result.exception is None) or isinstance(
        result.exception, SystemExit
    )
    assert output.count("Error:") == 1 and str(folder) in output, output
    return output


def _stored(directory) -> tuple[bytes, bytes, bytes]:
    return tuple((directory / name).read_bytes() for name in ("scores.csv", "run.json", "predictions.h5"))


def test_disk_full_while_writing_an_image(roots, monkeypatch):
    results, _ = roots
    assert _run("--limit", "2").exit_code == 0
    directory = results / "classic" / DATASET / "default"
    before = _stored(directory)
    real = np.savez_compressed

    def full(path, **arrays):
        real(path, **arrays)  # half-written: the data went out, then the disk filled
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(store.np, "savez_compressed", full)
        output = _one_sentence(_run("--limit", "4"), directory)
    assert "disk is full" in output
    assert _stored(directory) == before and check_record(directory) == []
    assert not list((directory / PARTS).glob(".*")) if (directory / PARTS).exists() else True
    assert _run("--limit", "4").exit_code == 0
    assert len(read_scores(directory)) == 4


def test_disk_full_while_consolidating(roots, monkeypatch):
    results, _ = roots
    assert _run("--limit", "2").exit_code == 0
    directory = results / "classic" / DATASET / "default"
    before = _stored(directory)

    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(store, "write_synced", full)
        output = _one_sentence(_run("--limit", "4"), directory)
    assert "disk is full" in output
    assert _stored(directory) == before and check_record(directory) == []
    assert not list(directory.glob(".*.tmp"))
    assert (
        len(list((directory / PARTS).glob("*.npz"))) == 2
    )  # the new images wait, committed, for the next run
    result = _run("--limit", "4")
    assert result.exit_code == 0 and "0 new, 4 already stored" in " ".join(result.output.split())
    assert len(read_scores(directory)) == 4


def test_read_only_results_root_injected(roots, monkeypatch):
    results, _ = roots
    assert _run("--limit", "1").exit_code == 0
    directory = results / "classic" / DATASET / "default"
    before = _stored(directory)
    real_mkdir = type(directory).mkdir

    def read_only(self, *args, **kwargs):
        if str(self).startswith(str(results)):
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real_mkdir(self, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(type(directory), "mkdir", read_only)
        output = _one_sentence(_run("--limit", "2"), directory)
    assert "read-only" in output
    assert _stored(directory) == before


def _mount_tmpfs(path, options: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None:
        return False
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, f"apgbench-{uuid.uuid4().hex[:6]}", str(path)],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


@pytest.fixture
def small_tmpfs(tmp_path):
    mount = tmp_path / "small"
    if not _mount_tmpfs(mount, "size=160k"):
        pytest.skip("cannot mount a tmpfs here (needs root and mount rights); the injected tests cover this")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_really_full_tmpfs(roots, small_tmpfs, monkeypatch):
    monkeypatch.setenv("APGBENCH_RESULTS_DIR", str(small_tmpfs))
    (small_tmpfs / "filler").write_bytes(b"\0" * 100_000)
    result = _run()
    if result.exit_code == 0:
        pytest.skip("the run fitted into the tmpfs; nothing to check")
    output = _one_sentence(result, small_tmpfs)
    assert "disk is full" in output


def test_really_read_only_root(roots, tmp_path, monkeypatch):
    results, _ = roots
    assert _run("--limit", "1").exit_code == 0
    mount = tmp_path / "ro"
    if not _mount_tmpfs(mount, "size=4m"):
        pytest.skip("cannot mount a tmpfs here (needs root and mount rights); the injected tests cover this")
    try:
        shutil.copytree(results, mount, dirs_exist_ok=True)
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        monkeypatch.setenv("APGBENCH_RESULTS_DIR", str(mount))
        directory = mount / "classic" / DATASET / "default"
        before = _stored(directory)
        output = _one_sentence(_run("--limit", "2"), mount)
        assert "read-only" in output
        assert _stored(directory) == before
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
