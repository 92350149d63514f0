"""Safe unpacking of zip and tar archives.

Every member name is checked before anything is written: absolute paths, ``..`` components, drive letters,
and (in tars) symbolic links, hard links and device files are refused, so an archive can never write outside
the target folder (zip-slip). Unpacking goes into ``<target>.partial`` and is renamed to ``<target>`` at the
end, so an interrupted extraction never looks complete.

Size limits (decompression bombs, full disks): before anything is written, the sizes the archive declares for
its members are added up (zip and tar record them; zip's CRC check and tar's block structure keep the written
bytes within them). Unpacking is refused with one sentence when the total exceeds

- ``max_ratio`` x the archive's size (default 20, ``$APGBENCH_MAX_UNPACK_RATIO``) once the total passes
  ``ratio_floor`` (default 1 GiB; sparse label images often compress 50x, harmless at small sizes), for
  archives whose bytes are not pinned by a published sha256: archives pinned in a dataset config were checked
  when the config was written (PanNuke's float64 masks compress more than 10x), unverified ones are where a
  bomb could hide;
- ``max_bytes`` for everything one call unpacks (default 100 GiB, ``$APGBENCH_MAX_UNPACK``, e.g. ``500G``);
- the free space of the target's file system.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from ..errors import InvalidInputError

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


#: Environment variables overriding the unpacking limits (see the module docstring).
MAX_RATIO_ENV, MAX_BYTES_ENV = "APGBENCH_MAX_UNPACK_RATIO", "APGBENCH_MAX_UNPACK"
DEFAULT_MAX_RATIO, DEFAULT_MAX_BYTES, DEFAULT_RATIO_FLOOR = 20.0, 100 * 2**30, 2**30
_UNITS = {
    "": 1,
    "B": 1,
    "K": 2**10,
    "KB": 2**10,
    "M": 2**20,
    "MB": 2**20,
    "G": 2**30,
    "GB": 2**30,
    "T": 2**40,
    "TB": 2**40,
}


class UnsafeArchiveError(InvalidInputError):
    """An archive member would land outside the target folder, or is a link or device."""


class CorruptArchiveError(InvalidInputError):
    """The file is not a readable zip or tar archive (truncated, corrupted, wrong format)."""


class ArchiveTooLargeError(InvalidInputError):
    """Unpacking would exceed the size limits; nothing was written."""


def parse_size(text: str | float) -> int:
    """Bytes from ``123``, ``"500M"``, ``"1.5 GB"`` or ``"2T"`` (binary units).

    Raises
    ------
    ValueError
        For text that is not a size.
    """
    if isinstance(text, (int, float)):
        return int(text)
    value = str(text).strip().upper().replace(" ", "").removesuffix("IB").removesuffix("I")
    number = value.rstrip("KMGTB")
    unit = value[len(number) :]
    try:
        if unit not in _UNITS or float(number) < 0:
            raise ValueError
        return int(float(number) * _UNITS[unit])
    except ValueError:
        raise InvalidInputError(f"'{text}' is not a size (examples: 500M, 20G, 1T).") from None


def _human(n_bytes: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n_bytes < 1024:
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024
    return f"{n_bytes:.1f} TB"


class UnpackBudget:
    """The limits of one extraction and the bytes used so far (shared by outer and nested archives).

    Parameters
    ----------
    max_ratio : float, optional
        Largest unpacked/archive size ratio of an archive that is not pinned by a checksum; ``None`` reads
        ``$APGBENCH_MAX_UNPACK_RATIO`` (default 20).
    max_bytes : int or str, optional
        Largest total unpacked size; ``None`` reads ``$APGBENCH_MAX_UNPACK`` (default 100 GiB).
    ratio_floor : int or str
        Unpacked sizes up to this are never refused for their ratio (default 1 GiB).
    """

    def __init__(
        self,
        max_ratio: float | None = None,
        max_bytes: int | str | None = None,
        ratio_floor: int | str = DEFAULT_RATIO_FLOOR,
    ) -> None:
        ratio = max_ratio if max_ratio is not None else os.environ.get(MAX_RATIO_ENV) or DEFAULT_MAX_RATIO
        try:
            self.max_ratio = float(ratio)
        except ValueError:
            raise InvalidInputError(f"{MAX_RATIO_ENV}='{ratio}' is not a number.") from None
        self.max_bytes = parse_size(
            max_bytes if max_bytes is not None else os.environ.get(MAX_BYTES_ENV) or DEFAULT_MAX_BYTES
        )
        self.ratio_floor = parse_size(ratio_floor)
        self.used = 0

    def claim(self, archive: Path, total: int, folder: Path, *, pinned: bool) -> None:
        """Account for ``total`` unpacked bytes of ``archive``, or raise :class:`ArchiveTooLargeError`."""
        size = archive.stat().st_size
        fix = (
            f"if you trust the file, raise the limit with {MAX_RATIO_ENV} / {MAX_BYTES_ENV} "
            "(e.g. 50 or 500G)."
        )
        if not pinned and total > max(self.max_ratio * size, self.ratio_floor):
            raise ArchiveTooLargeError(
                f"Refusing to unpack {archive.name}: its members add up to {_human(total)}, more than "
                f"{self.max_ratio:g}x the archive's {_human(size)} (a possible decompression bomb); {fix}"
            )
        if self.used + total > self.max_bytes:
            raise ArchiveTooLargeError(
                f"Refusing to unpack {archive.name}: it would bring the unpacked data to "
                f"{_human(self.used + total)}, more than the limit of {_human(self.max_bytes)}; {fix}"
            )
        free = shutil.disk_usage(folder).free
        if total > free:
            raise ArchiveTooLargeError(
                f"Cannot unpack {archive.name}: it needs {_human(total)} but only "
                f"{_human(free)} is free on {folder}."
            )
        self.used += total


def is_archive(name: str | os.PathLike) -> bool:
    """True if the file name ends in a zip or tar suffix we unpack."""
    return str(name).lower().endswith(ARCHIVE_SUFFIXES)


def _check_name(archive: Path, name: str) -> None:
    path = PurePosixPath(name.replace("\\", "/"))
    if (
        path.is_absolute()
        or name.startswith(("/", "\\"))
        or ".." in path.parts
        or (path.parts and ":" in path.parts[0])
    ):
        raise UnsafeArchiveError(
            f"Refusing to unpack {archive.name}: member '{name}' would be written outside the target folder."
        )


def _zip_members(archive: Path, zf: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    members = zf.infolist()
    for info in members:
        _check_name(archive, info.filename)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise UnsafeArchiveError(
                f"Refusing to unpack {archive.name}: member '{info.filename}' is a symbolic link."
            )
    return members


def _tar_members(archive: Path, tf: tarfile.TarFile) -> list[tarfile.TarInfo]:
    members = tf.getmembers()
    for info in members:
        _check_name(archive, info.name)
        if info.issym() or info.islnk():
            raise UnsafeArchiveError(
                f"Refusing to unpack {archive.name}: member '{info.name}' is a link (to '{info.linkname}')."
            )
        if not (info.isfile() or info.isdir()):
            raise UnsafeArchiveError(
                f"Refusing to unpack {archive.name}: member '{info.name}' is not a regular file or folder."
            )
    return members


def unpack_into(
    archive: str | os.PathLike,
    folder: str | os.PathLike,
    *,
    budget: UnpackBudget | None = None,
    pinned: bool = False,
) -> None:
    """Unpack one archive into an existing folder after checking every member (no atomic rename).

    Parameters
    ----------
    archive, folder : path
        The zip/tar file and where to unpack it.
    budget : UnpackBudget, optional
        Size limits, shared between calls (a fresh default budget if omitted).
    pinned : bool
        The archive's bytes were verified against a published sha256 (no ratio limit, see module docstring).

    Raises
    ------
    UnsafeArchiveError
        A member escapes the folder or is a link/device; nothing is written in that case.
    ArchiveTooLargeError
        The members would exceed the size limits; nothing is written in that case.
    CorruptArchiveError
        The file is not a readable zip or tar archive (truncated, corrupted, wrong format).
    """
    archive, folder = Path(archive), Path(folder)
    budget = budget if budget is not None else UnpackBudget()
    folder.mkdir(parents=True, exist_ok=True)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                members = _zip_members(archive, zf)
                budget.claim(archive, sum(i.file_size for i in members), folder, pinned=pinned)
                bad = zf.testzip()
                if bad is not None:
                    raise CorruptArchiveError(
                        f"{archive.name} is corrupted: member '{bad}' fails its CRC check."
                    )
                for info in members:
                    zf.extract(info, folder)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                members = _tar_members(archive, tf)
                budget.claim(archive, sum(i.size for i in members if i.isfile()), folder, pinned=pinned)
                # Members were checked above; the "data" filter (where available) is a second line of defence.
                extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                for info in members:
                    tf.extract(info, folder, set_attrs=False, **extra)
        else:
            raise CorruptArchiveError(
                f"{archive.name} is not a readable zip or tar archive (truncated or corrupted?)."
            )
    except OSError as err:
        if err.errno is None:  # gzip/bz2/lzma report bad data as a bare OSError
            raise CorruptArchiveError(
                f"{archive.name} could not be unpacked ({err}); the file is probably "
                "truncated or corrupted: delete it and download or import it again."
            ) from err
        raise OSError(err.errno, f"Unpacking {archive.name} into {folder} failed: {err.strerror}") from err
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error) as err:
        raise CorruptArchiveError(
            f"{archive.name} could not be unpacked ({err}); the file is probably truncated "
            "or corrupted: delete it and download or import it again."
        ) from err


def safe_extract(
    archives: list[str | os.PathLike],
    target: str | os.PathLike,
    *,
    nested: list[str] = (),
    copy_files: list[str | os.PathLike] = (),
    pinned: list[str | os.PathLike] = (),
    budget: UnpackBudget | None = None,
) -> Path:
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
    pinned : list of paths
        The archives verified against a published sha256 (their nested archives count as pinned too).
    budget : UnpackBudget, optional
        Size limits for the whole call (defaults from the environment).

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
    budget = budget if budget is not None else UnpackBudget()
    trusted = {Path(p).resolve() for p in pinned}
    try:
        for archive in archives:
            unpack_into(archive, partial, budget=budget, pinned=Path(archive).resolve() in trusted)
        all_pinned = bool(archives) and all(Path(a).resolve() in trusted for a in archives)
        for pattern in nested:
            for inner in sorted(partial.glob(pattern)):
                unpack_into(inner, inner.parent, budget=budget, pinned=all_pinned)
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
