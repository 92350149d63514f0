"""Download, import, prepare and verify datasets: the library behind ``apgbench datasets ...``.

Cache layout under the data root (``--data-root``, ``$APGBENCH_DATA_DIR``, default ``./datasets``)::

    <id>/raw/<filename>      verified downloads or imported files (kept, so `verify` can re-hash them)
    <id>/extracted/          unpacked files (removed after preparation unless keep_extracted)
    <id>/prepared.h5         the benchmark test split (see prepared.py)
    <id>/manifest.json       sha256 of every raw file and of prepared.h5, image count, origin

A download or import builds new raw copies, unpacked files and the prepared file in ``<id>/.staging`` and
swaps them in only when everything succeeded (see :mod:`.staging`); a file lock serialises work on one dataset.
So a failed or killed (``kill -9``) download or import never replaces a good copy, and the leftovers of killed
work are deleted by the next call.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock

from ..config import data_root as _data_root
from ..errors import InvalidInputError, NotFoundError, UnavailableError
from ..files import sha256_file
from .download import ChecksumError, fetch_file
from .extract import CorruptArchiveError, is_archive, safe_extract
from .prepare import prepare_dataset
from .schema import DatasetConfig, RemoteFile
from .staging import Staging, recover, staging


class ManualDatasetError(UnavailableError):
    """The dataset must be obtained by hand; the message says how."""


def dataset_dir(config: DatasetConfig, data_root: str | os.PathLike | None = None) -> Path:
    """``<data_root>/<id>``."""
    return _data_root(data_root) / config.id


def _prepared(config: DatasetConfig, data_root) -> Path:
    from . import prepared_path  # the package defines the one place the prepared file lives

    return prepared_path(config, data_root)


def manual_instructions(config: DatasetConfig) -> str:
    """One paragraph telling a person how to obtain a manual dataset and import it."""
    text = " ".join((config.source.instructions or "").split())
    if text and not text.endswith((".", "!", "?")):
        text += "."
    files = [f"'{f.filename}'" for f in config.source.files]
    if not files:  # the instructions end with the folder that holds the data
        what = " with that folder as PATH,"
    elif len(files) == 1:
        what = f", where PATH is the downloaded file {files[0]} or a folder holding it,"
    else:
        what = (
            f", where PATH is a folder holding {', '.join(files[:-1])} and {files[-1]} (or each file in "
            "turn),"
        )
    return (
        f"Dataset '{config.id}' ({config.name}) cannot be downloaded automatically. {text} "
        f"Then run `apgbench datasets import {config.id} PATH`{what} which verifies and prepares it."
    )


def read_manifest(config: DatasetConfig, data_root=None) -> dict:
    """The dataset's manifest (empty if none)."""
    path = dataset_dir(config, data_root) / "manifest.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


@contextmanager
def _lock(config: DatasetConfig, data_root, *, wait: bool = True):
    """Hold the dataset's lock and finish or drop the work of a killed process first (see staging.py).

    With ``wait=False`` the block runs without the lock (and without recovery) if another process holds it.
    """
    folder = dataset_dir(config, data_root)
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder / ".lock"))
    try:
        lock.acquire(timeout=-1 if wait else 0)
    except TimeoutError:  # filelock.Timeout subclasses TimeoutError
        yield
        return
    try:
        recover(folder)
        yield
    finally:
        lock.release()


def is_prepared(config: DatasetConfig, data_root=None) -> bool:
    """True if the prepared test split exists."""
    return _prepared(config, data_root).is_file()


def download_dataset(
    config: DatasetConfig,
    data_root=None,
    *,
    mirror: str | None = None,
    retries: int = 3,
    progress: bool = True,
    force: bool = False,
    keep_extracted: bool = False,
) -> Path:
    """Download, verify, unpack and prepare a dataset; return the prepared file.

    Raises
    ------
    ManualDatasetError
        For datasets a person must obtain by hand (the message holds the instructions).
    DownloadError, ChecksumError, UnsafeArchiveError, ReaderError
        With a one-sentence message; the cache keeps only verified files.
    """
    if config.builtin:
        raise InvalidInputError(f"Dataset '{config.id}' is built in: there is nothing to download.")
    if config.manual:
        raise ManualDatasetError(manual_instructions(config))
    if config.variant:  # a variant is prepared from its base dataset's download
        from . import get_dataset_config

        if not is_prepared(config, data_root) or force:
            download_dataset(
                get_dataset_config(config.base_id),
                data_root,
                mirror=mirror,
                retries=retries,
                progress=progress,
            )
            return prepare_cached(config, data_root, keep_extracted=keep_extracted)
        return _prepared(config, data_root)
    with _lock(config, data_root):
        if is_prepared(config, data_root) and not force:
            return _prepared(config, data_root)
        raw = dataset_dir(config, data_root) / "raw"
        with staging(dataset_dir(config, data_root)) as stage:
            files = []
            for remote in config.source.files:
                cached = raw / remote.filename
                if cached.is_file() and remote.sha256 is not None:
                    if sha256_file(cached) == remote.sha256:
                        files.append(cached)
                        continue
                    # A copy that differs (e.g. imported with --no-verify) is replaced only on success.
                    files.append(
                        fetch_file(remote, stage.raw, mirror=mirror, retries=retries, progress=progress)
                    )
                else:  # nothing to replace: a verified download stays even if preparing it fails
                    files.append(fetch_file(remote, raw, mirror=mirror, retries=retries, progress=progress))
            pinned = [f for f, r in zip(files, config.source.files) if r.sha256 is not None]
            return _prepare_from_files(
                config,
                data_root,
                stage,
                files,
                origin="download",
                pinned=pinned,
                keep_extracted=keep_extracted,
            )


def prepare_cached(config: DatasetConfig, data_root=None, *, keep_extracted: bool = False) -> Path:
    """Prepare a dataset, or a variant (``id@name``), again from the raw files already in the cache.

    A variant reads its base dataset's ``<base>/raw`` files and writes its own ``<id@name>/prepared.h5`` and
    manifest, so the default (paper) split is never overwritten by a variant.

    Raises
    ------
    FileNotFoundError
        If a raw file is not cached yet (the message names the command that fetches it).
    """
    if config.builtin:
        raise InvalidInputError(f"Dataset '{config.id}' is built in: there is nothing to prepare.")
    raw = _data_root(data_root) / config.base_id / "raw"
    files = [raw / f.filename for f in config.source.files]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        verb = f"import {config.base_id} PATH" if config.manual else f"download {config.base_id}"
        raise NotFoundError(
            f"Dataset '{config.base_id}' has no cached {', '.join(missing)} under {raw}: run "
            f"`apgbench datasets {verb}` first."
        )
    try:  # the base dataset's recorded raw hashes, so the files are not hashed again
        manifest = json.loads((raw.parent / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        manifest = {}
    hashes = {name: digest for name, digest in manifest.get("raw", {}).items() if (raw / name).is_file()}
    pinned = [f for f, r in zip(files, config.source.files) if r.sha256 is not None]
    with _lock(config, data_root), staging(dataset_dir(config, data_root)) as stage:
        return _prepare_from_files(
            config,
            data_root,
            stage,
            files,
            origin=f"cache of '{config.base_id}'",
            pinned=pinned,
            keep_extracted=keep_extracted,
            hashes=hashes,
        )


def _expected_file(config: DatasetConfig, path: Path) -> RemoteFile:
    files = config.source.files
    for remote in files:
        if remote.filename == path.name:
            return remote
    if len(files) == 1:
        return files[0]
    names = ", ".join(f.filename for f in files)
    raise InvalidInputError(f"'{path.name}' is not one of the files of dataset '{config.id}' ({names}).")


def import_dataset(
    config: DatasetConfig,
    path: str | os.PathLike,
    data_root=None,
    *,
    verify: bool = True,
    keep_extracted: bool = False,
) -> tuple[Path, list[str]]:
    """Verify and prepare a dataset from a file (or folder) the user obtained.

    Parameters
    ----------
    config : DatasetConfig
        The dataset.
    path : path
        The downloaded file; or a folder holding the expected file(s); or a folder with the data already
        unpacked (then it is read in place and only its layout is checked).
    data_root : path, optional
        Cache root.
    verify : bool
        Check the file's sha256 where the config has one; ``False`` accepts a different copy with a warning.
    keep_extracted : bool
        Keep the unpacked files after preparation.

    Returns
    -------
    (Path, list of str)
        The prepared file and notes for the user (warnings, recorded hashes).
    """
    path = Path(path)
    if not path.exists():
        raise NotFoundError(f"{path} does not exist.")
    notes: list[str] = []
    with _lock(config, data_root), staging(dataset_dir(config, data_root)) as stage:
        expected = {f.filename for f in config.source.files}
        if path.is_dir() and not any((path / name).is_file() for name in expected):
            n = prepare_dataset(config, path, stage.prepared)
            stage.commit(
                _manifest(config, stage, {}, "import-folder", n, notes, source_path=str(path.resolve()))
            )
            return _prepared(config, data_root), notes
        candidates = (
            [path / name for name in sorted(expected) if (path / name).is_file()] if path.is_dir() else [path]
        )
        raw = dataset_dir(config, data_root) / "raw"
        stage.raw.mkdir()
        digests: dict[str, str] = {}
        pinned: list[Path] = []
        for candidate in candidates:
            remote = _expected_file(config, candidate)
            digest = sha256_file(candidate)
            if remote.sha256 and digest != remote.sha256:
                if verify:
                    raise ChecksumError(
                        candidate.name, remote.sha256, digest, " Pass --no-verify to use this copy anyway."
                    )
                message = (
                    f"'{candidate.name}' differs from the published file (sha256 {digest}, expected "
                    f"{remote.sha256}); results may not match the paper."
                )
                warnings.warn(message, UserWarning, stacklevel=2)
                notes.append(message)
            elif not remote.sha256:
                notes.append(f"No published checksum for '{remote.filename}'; recorded sha256 {digest}.")
            else:
                pinned.append(stage.raw / remote.filename)
            # The copy stays in the staging folder until the whole import succeeded.
            shutil.copyfile(candidate, stage.raw / remote.filename)
            digests[remote.filename] = digest
        # Datasets with several files (e.g. images + annotations) may be imported one file at a time.
        files = [
            stage.raw / f.filename if (stage.raw / f.filename).is_file() else raw / f.filename
            for f in config.source.files
        ]
        missing = [f.name for f in files if not f.is_file()]
        previous = read_manifest(config, data_root)
        if missing:
            # Keep the verified copies for the next import, recording their hashes.
            previous.setdefault("dataset", config.id)
            previous["raw"] = {**previous.get("raw", {}), **digests}
            stage.commit(previous)
            raise NotFoundError(
                f"Dataset '{config.id}' still needs {', '.join(missing)}: import it too (or "
                "pass a folder holding all its files)."
            )
        old = previous.get("raw", {})
        digests = {**{f.name: old[f.name] for f in files if f.name in old}, **digests}
        return _prepare_from_files(
            config,
            data_root,
            stage,
            files,
            origin="import",
            pinned=pinned,
            keep_extracted=keep_extracted,
            notes=notes,
            hashes=digests,
        ), notes


def _prepare_from_files(
    config: DatasetConfig,
    data_root,
    stage: Staging,
    files: list[Path],
    *,
    origin: str,
    pinned: list[Path],
    keep_extracted: bool,
    notes: list[str] | None = None,
    hashes: dict[str, str] | None = None,
) -> Path:
    """Unpack and prepare ``files`` inside the staging folder, then commit (raw copies, prepared, manifest)."""
    by_name = {f.filename: f for f in config.source.files}
    archives = [f for f in files if _extract(by_name.get(f.name), f)]
    plain = [f for f in files if f not in archives]
    try:
        safe_extract(
            archives, stage.extracted, nested=config.source.nested_archives, copy_files=plain, pinned=pinned
        )
    except CorruptArchiveError:
        # A downloaded file without a published checksum can only be judged by unpacking it: drop a broken one
        # so the next attempt fetches it again instead of reusing it.
        for f in archives:
            remote = by_name.get(f.name)
            if remote is not None and remote.sha256 is None and origin == "download":
                f.unlink(missing_ok=True)
        raise
    n = prepare_dataset(config, stage.extracted, stage.prepared)
    if not keep_extracted:
        shutil.rmtree(stage.extracted, ignore_errors=True)
    hashes = dict(hashes or {})
    for f in files:  # downloads with a published hash were verified while streaming; hash the others now
        if f.name not in hashes:
            known = by_name[f.name].sha256 if f.name in by_name and origin == "download" else None
            hashes[f.name] = known or sha256_file(f)
    stage.commit(_manifest(config, stage, hashes, origin, n, notes or []))
    return _prepared(config, data_root)


def _extract(remote: RemoteFile | None, path: Path) -> bool:
    if remote is not None and remote.extract is not None:
        return remote.extract
    return is_archive(path.name)


def _manifest(
    config, stage: Staging, hashes: dict, origin: str, n: int, notes: list[str], source_path: str = ""
) -> dict:
    manifest = {
        "dataset": config.id,
        "origin": origin,
        "raw": hashes,
        "n_images": n,
        "prepared_sha256": sha256_file(stage.prepared),
        "notes": notes,
    }
    if source_path:
        manifest["source_path"] = source_path
    return manifest


def dataset_status(config: DatasetConfig, data_root=None) -> dict:
    """Cache status for ``datasets list``: prepared or not, image count, bytes on disk, manual or not."""
    folder = dataset_dir(config, data_root)
    manifest = read_manifest(config, data_root)
    on_disk = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0
    return {
        "id": config.id,
        "domain": config.domain,
        "builtin": config.builtin,
        "manual": config.manual,
        "prepared": config.builtin or is_prepared(config, data_root),
        "n_images": manifest.get("n_images", config.n_images or config.format.options.get("n_images")),
        "bytes": on_disk,
        "size": " + ".join(f.size for f in config.source.files if f.size) or None,
    }


def verify_dataset(config: DatasetConfig, data_root=None) -> list[tuple[str, bool, str]]:
    """Re-hash a dataset's cached raw files and prepared file.

    Returns
    -------
    list of (name, ok, message)
        One row per checked file; empty if nothing is cached.
    """
    folder = dataset_dir(config, data_root)
    if not folder.is_dir():
        return []
    with _lock(config, data_root, wait=False):  # finishes or drops killed work unless another process is busy
        return _verify_rows(config, folder, read_manifest(config, data_root))


def _verify_rows(config: DatasetConfig, folder: Path, manifest: dict) -> list[tuple[str, bool, str]]:
    rows: list[tuple[str, bool, str]] = []
    by_name = {f.filename: f for f in config.source.files}
    raw = folder / "raw"
    for path in sorted(raw.glob("*")) if raw.is_dir() else []:
        if not path.is_file() or path.name not in by_name:
            continue
        published = by_name[path.name].sha256
        expected = manifest.get("raw", {}).get(path.name) or published
        digest = sha256_file(path)
        if expected is None:
            rows.append((f"raw/{path.name}", True, f"no reference hash; sha256 {digest}"))
        elif digest != expected:
            rows.append((f"raw/{path.name}", False, f"expected {expected}, got {digest}"))
        else:
            differs = published is not None and digest != published
            rows.append(
                (
                    f"raw/{path.name}",
                    True,
                    "ok (imported copy differs from the published file)" if differs else "ok",
                )
            )
    prepared = folder / "prepared.h5"
    if prepared.is_file():
        expected = manifest.get("prepared_sha256")
        digest = sha256_file(prepared)
        ok = expected is None or digest == expected
        rows.append(
            (
                "prepared.h5",
                ok,
                "ok"
                if expected and ok
                else ("no manifest entry" if expected is None else f"expected {expected}, got {digest}"),
            )
        )
    return rows
