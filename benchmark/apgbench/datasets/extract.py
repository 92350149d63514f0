"""Safe unpacking of zip and tar archives.

Every member name is checked before anything is written: absolute paths, ``..`` components, drive letters,
and (in tars) symbolic links, hard links and device files are refused, so an archive can never write outside
the target folder (zip-slip). Unpacking goes into ``<target>.partial`` and is renamed to ``<target>`` at the
end, so an interrupted extraction never looks complete.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


class UnsafeArchiveError(ValueError):
    """An archive member would land outside the target folder, or is a link or device."""


def is_archive(name: str | os.PathLike) -> bool:
    """True if the file name ends in a zip or tar suffix we unpack."""
    return str(name).lower().endswith(ARCHIVE_SUFFIXES)


def _check_name(archive: Path, name: str) -> None:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or name.startswith(("/", "\\")) or ".." in path.parts or (
            path.parts and ":" in path.parts[0]):
        raise UnsafeArchiveError(f"Refusing to unpack {archive.name}: member '{name}' would be written outside "
                                 "the target folder.")


def _zip_members(archive: Path, zf: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    members = zf.infolist()
    for info in members:
        _check_name(archive, info.filename)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise UnsafeArchiveError(f"Refusing to unpack {archive.name}: member '{info.filename}' is a symbolic "
                                     "link.")
    return members


def _tar_members(archive: Path, tf: tarfile.TarFile) -> list[tarfile.TarInfo]:
    members = tf.getmembers()
    for info in members:
        _check_name(archive, info.name)
        if info.issym() or info.islnk():
            raise UnsafeArchiveError(f"Refusing to unpack {archive.name}: member '{info.name}' is a link "
                                     f"(to '{info.linkname}').")
        if not (info.isfile() or info.isdir()):
            raise UnsafeArchiveError(f"Refusing to unpack {archive.name}: member '{info.name}' is not a regular "
                                     "file or folder.")
    return members


def unpack_into(archive: str | os.PathLike, folder: str | os.PathLike) -> None:
    """Unpack one archive into an existing folder after checking every member (no atomic rename).

    Raises
    ------
    UnsafeArchiveError
        A member escapes the folder or is a link/device; nothing is written in that case.
    ValueError
        The file is not a readable zip or tar archive (truncated, corrupted, wrong format).
    """
    archive, folder = Path(archive), Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                members = _zip_members(archive, zf)
                bad = zf.testzip()
                if bad is not None:
                    raise ValueError(f"{archive.name} is corrupted: member '{bad}' fails its CRC check.")
                for info in members:
                    zf.extract(info, folder)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                members = _tar_members(archive, tf)
                # Members were checked above; the "data" filter (where available) is a second line of defence.
                extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                for info in members:
                    tf.extract(info, folder, set_attrs=False, **extra)
        else:
            raise ValueError(f"{archive.name} is not a readable zip or tar archive (truncated or corrupted?).")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as err:
        if isinstance(err, UnsafeArchiveError):
            raise
        raise ValueError(f"{archive.name} could not be unpacked ({err}); the file is probably truncated or "
                         "corrupted: delete it and download or import it again.") from err


def safe_extract(archives: list[str | os.PathLike], target: str | os.PathLike, *,
                 nested: list[str] = (), copy_files: list[str | os.PathLike] = ()) -> Path:
    """Unpack archives into ``target`` atomically (via ``<target>.partial``).

    Parameters
    ----------
    archives : list of paths
        zip/tar archives, unpacked in order into the same folder.
    target : path
        Final folder; replaced if it exists.
    nested : list of str
        Globs, relative to the folder, of archives found inside the archives; each is unpacked into its own
        parent folder (e.g. ``*/data/data.zip`` in a repository snapshot).
    copy_files : list of paths
        Plain files (not archives) to place at the top of the folder (hard link where possible).

    Returns
    -------
    Path
        ``target``.
    """
    target = Path(target)
    partial = target.with_name(target.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    try:
        for archive in archives:
            unpack_into(archive, partial)
        for pattern in nested:
            for inner in sorted(partial.glob(pattern)):
                unpack_into(inner, inner.parent)
        for file in copy_files:
            file = Path(file)
            try:
                os.link(file, partial / file.name)
            except OSError:
                shutil.copy2(file, partial / file.name)
        if target.exists():
            shutil.rmtree(target)
        os.replace(partial, target)
    finally:
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)
    return target
