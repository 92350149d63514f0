"""Archive extraction refuses members escaping the target and never leaves a half-unpacked folder."""

from __future__ import annotations

import io
import tarfile
import zipfile

import pytest

from apgbench.datasets.extract import UnsafeArchiveError, is_archive, safe_extract

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
    with pytest.raises(ValueError, match="a.zip"):
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
    target = safe_extract([archive, tarball], tmp_path / "out", nested=["*/data/data.zip"], copy_files=[plain])
    assert (target / "repo-abc" / "data" / "x" / "deep.txt").read_text() == "deep"
    assert (target / "t" / "a.txt").read_text() == "a" and (target / "notes.json").exists()
    assert is_archive("x.tar.gz") and is_archive("X.ZIP") and not is_archive("a.json")
