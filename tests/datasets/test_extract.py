"""Archive extraction refuses members escaping the target and never leaves a half-unpacked folder."""

from __future__ import annotations

import io
import os
import tarfile
import zipfile

import pytest

from apgbench.datasets.extract import (
    ArchiveTooLargeError,
    UnpackBudget,
    UnsafeArchiveError,
    is_archive,
    parse_size,
    safe_extract,
)

from ._helpers import tar_tree, zip_tree


def _zip(path, members: dict[str, bytes]):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


@pytest.mark.parametrize("evil", ["../evil.txt", "a/../../evil.txt", "/abs/evil.txt", "C:/evil.txt"])
def test_zip_slip_is_refused(tmp_path, evil):
    archive = _zip(tmp_path / "a.zip", {"ok/file.txt": b"fine", evil: b"bad"})
    target = tmp_path / "out" / "extracted"
    with pytest.raises(UnsafeArchiveError, match="outside the target"):
        safe_extract([archive], target)
    assert not target.exists() and not target.with_name("extracted.partial").exists()
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "out" / "evil.txt").exists()


def test_tar_symlink_and_traversal_are_refused(tmp_path):
    for name, kind in (("link", tarfile.SYMTYPE), ("../up.txt", tarfile.REGTYPE)):
        archive = tmp_path / "a.tar"
        with tarfile.open(archive, "w") as tf:
            info = tarfile.TarInfo(name)
            info.type = kind
            data = b"x"
            if kind == tarfile.SYMTYPE:
                info.linkname = "/etc/passwd"
                tf.addfile(info)
            else:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
        with pytest.raises(UnsafeArchiveError):
            safe_extract([archive], tmp_path / "out")
        assert not (tmp_path / "out").exists()


def test_truncated_archive_is_a_clear_error(tmp_path):
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "f.bin").write_bytes(bytes(range(256)) * 200)
    archive = zip_tree(src, tmp_path / "a.zip")
    archive.write_bytes(archive.read_bytes()[:-300])
    with pytest.raises(ValueError, match=r"a.zip"):
        safe_extract([archive], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_zip_tar_and_nested_archives(tmp_path):
    inner_src = tmp_path / "inner"
    (inner_src / "x").mkdir(parents=True)
    (inner_src / "x" / "deep.txt").write_text("deep")
    outer = tmp_path / "outer"
    (outer / "repo-abc" / "data").mkdir(parents=True)
    zip_tree(inner_src, outer / "repo-abc" / "data" / "data.zip")
    (outer / "repo-abc" / "README").write_text("r")
    archive = zip_tree(outer, tmp_path / "repo.zip")
    tar_src = tmp_path / "tsrc"
    (tar_src / "t").mkdir(parents=True)
    (tar_src / "t" / "a.txt").write_text("a")
    tarball = tar_tree(tar_src, tmp_path / "t.tar.gz")
    plain = tmp_path / "notes.json"
    plain.write_text("{}")
    target = safe_extract(
        [archive, tarball], tmp_path / "out", nested=["*/data/data.zip"], copy_files=[plain]
    )
    assert (target / "repo-abc" / "data" / "x" / "deep.txt").read_text() == "deep"
    assert (target / "t" / "a.txt").read_text() == "a" and (target / "notes.json").exists()
    assert is_archive("x.tar.gz") and is_archive("X.ZIP") and not is_archive("a.json")


def _zeros_zip(path, n_bytes=3 << 20):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("data/zeros.bin", bytes(n_bytes))
    return path


def test_ratio_limit_refuses_unverified_bombs(tmp_path):
    archive = _zeros_zip(tmp_path / "bomb.zip")  # 3 MB of zeros in a few KB: ratio ~1000
    budget = UnpackBudget(ratio_floor=0)
    with pytest.raises(ArchiveTooLargeError, match=r"bomb.zip.*3.0 MB.*20x.*APGBENCH_MAX_UNPACK_RATIO"):
        safe_extract([archive], tmp_path / "out", budget=budget)
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()
    # a file pinned by a published checksum, a raised ratio, or a small total is unpacked
    safe_extract([archive], tmp_path / "pinned", pinned=[archive], budget=UnpackBudget(ratio_floor=0))
    safe_extract([archive], tmp_path / "raised", budget=UnpackBudget(max_ratio=5000, ratio_floor=0))
    safe_extract([archive], tmp_path / "small")  # default floor: 3 MB is harmless
    assert (tmp_path / "pinned" / "data" / "zeros.bin").stat().st_size == 3 << 20


def test_ratio_limit_from_environment_and_tar(tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    (src / "zeros.bin").write_bytes(bytes(2 << 20))
    tarball = tar_tree(src, tmp_path / "t.tar.gz")
    monkeypatch.setenv("APGBENCH_MAX_UNPACK_RATIO", "30")
    with pytest.raises(ArchiveTooLargeError, match=r"t.tar.gz.*30x"):
        safe_extract([tarball], tmp_path / "out", budget=UnpackBudget(ratio_floor="1K"))
    monkeypatch.setenv("APGBENCH_MAX_UNPACK_RATIO", "lots")
    with pytest.raises(ValueError, match="APGBENCH_MAX_UNPACK_RATIO='lots'"):
        UnpackBudget()


def test_absolute_cap_counts_every_archive_and_nested_ones(tmp_path, monkeypatch):
    first, second = _zeros_zip(tmp_path / "a.zip", 600 << 10), _zeros_zip(tmp_path / "b.zip", 600 << 10)
    monkeypatch.setenv("APGBENCH_MAX_UNPACK", "1M")
    with pytest.raises(ArchiveTooLargeError, match=r"b.zip.*1.2 MB.*limit of 1.0 MB.*APGBENCH_MAX_UNPACK"):
        safe_extract([first, second], tmp_path / "out", pinned=[first, second])
    assert not (tmp_path / "out").exists()
    outer_src = tmp_path / "outer"
    (outer_src / "d").mkdir(parents=True)
    _zeros_zip(outer_src / "d" / "inner.zip", 900 << 10)
    (outer_src / "d" / "pad.bin").write_bytes(os.urandom(200 << 10))
    outer = zip_tree(outer_src, tmp_path / "outer.zip")
    with pytest.raises(ArchiveTooLargeError, match=r"inner.zip"):  # 200 KB + inner file, then 900 KB more
        safe_extract([outer], tmp_path / "out", nested=["d/inner.zip"], pinned=[outer])


@pytest.mark.parametrize(
    "text, expected",
    [(123, 123), ("500M", 500 << 20), ("1.5 GB", 3 << 29), ("2TiB", 2 << 40), ("10k", 10 << 10)],
)
def test_parse_size(text, expected):
    assert parse_size(text) == expected


def test_parse_size_refuses_nonsense():
    with pytest.raises(ValueError, match="'lots' is not a size"):
        parse_size("lots")
