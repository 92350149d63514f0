"""Download, import, prepare and verify datasets: the library behind ``apgbench datasets ...``.

Cache layout under the data root (``--data-root``, ``$APGBENCH_DATA_DIR``, default ``./datasets``)::

    <id>/raw/<filename>      verified downloads or imported files (kept, so `verify` can re-hash them)
    <id>/extracted/          unpacked files (removed after preparation unless keep_extracted)
    <id>/prepared.h5         the benchmark test split (see prepared.py)
    <id>/manifest.json       sha256 of every raw file and of prepared.h5, image count, origin

Every step writes under a temporary name and renames at the end, and a file lock serialises work on one
dataset, so an interrupted or failed step leaves either the old state or nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

from filelock import FileLock

from ..config import data_root as _data_root
from .download import ChecksumError, fetch_file
from .extract import is_archive, safe_extract
from .prepare import prepare_dataset
from .prepared import file_sha256
from .schema import DatasetConfig, RemoteFile


class ManualDatasetError(RuntimeError):
    """The dataset must be obtained by hand; the message says how."""


def dataset_dir(config: DatasetConfig, data_root: str | os.PathLike | None = None) -> Path:
    """``<data_root>/<id>``."""
    return _data_root(data_root) / config.id


def _prepared(config: DatasetConfig, data_root) -> Path:
    from . import prepared_path  # the package defines the one place the prepared file lives

    return prepared_path(config, data_root)


def manual_instructions(config: DatasetConfig) -> str:
    """One paragraph telling a person how to obtain a manual dataset and import it."""
    names = " and ".join(f"'{f.filename}'" for f in config.source.files) or "the data"
    text = (config.source.instructions or "").strip().replace("\n", " ")
    return (f"Dataset '{config.id}' ({config.name}) cannot be downloaded automatically. {text} "
            f"Then run `apgbench datasets import {config.id} PATH` with PATH the downloaded file {names} (or a "
            "folder holding it), which verifies and prepares it.")


def read_manifest(config: DatasetConfig, data_root=None) -> dict:
    """The dataset's manifest (empty if none)."""
    path = dataset_dir(config, data_root) / "manifest.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _write_manifest(config: DatasetConfig, data_root, manifest: dict) -> None:
    path = dataset_dir(config, data_root) / "manifest.json"
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def _lock(config: DatasetConfig, data_root) -> FileLock:
    folder = dataset_dir(config, data_root)
    folder.mkdir(parents=True, exist_ok=True)
    return FileLock(str(folder / ".lock"))


def is_prepared(config: DatasetConfig, data_root=None) -> bool:
    """True if the prepared test split exists."""
    return _prepared(config, data_root).is_file()


def download_dataset(config: DatasetConfig, data_root=None, *, mirror: str | None = None, retries: int = 3,
                     progress: bool = True, force: bool = False, keep_extracted: bool = False) -> Path:
    """Download, verify, unpack and prepare a dataset; return the prepared file.

    Raises
    ------
    ManualDatasetError
        For datasets a person must obtain by hand (the message holds the instructions).
    DownloadError, ChecksumError, UnsafeArchiveError, ReaderError
        With a one-sentence message; the cache keeps only verified files.
    """
    if config.builtin:
        raise ValueError(f"Dataset '{config.id}' is built in: there is nothing to download.")
    if config.manual:
        raise ManualDatasetError(manual_instructions(config))
    if config.variant:  # a variant is prepared from its base dataset's download
        from . import get_dataset_config

        if not is_prepared(config, data_root) or force:
            download_dataset(get_dataset_config(config.base_id), data_root, mirror=mirror, retries=retries,
                             progress=progress)
            return prepare_cached(config, data_root, keep_extracted=keep_extracted)
        return _prepared(config, data_root)
    with _lock(config, data_root):
        if is_prepared(config, data_root) and not force:
            return _prepared(config, data_root)
        raw = dataset_dir(config, data_root) / "raw"
        files = [fetch_file(f, raw, mirror=mirror, retries=retries, progress=progress)
                 for f in config.source.files]
        return _prepare_from_files(config, data_root, files, origin="download", keep_extracted=keep_extracted)


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
        raise ValueError(f"Dataset '{config.id}' is built in: there is nothing to prepare.")
    raw = _data_root(data_root) / config.base_id / "raw"
    files = [raw / f.filename for f in config.source.files]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        verb = f"import {config.base_id} PATH" if config.manual else f"download {config.base_id}"
        raise FileNotFoundError(f"Dataset '{config.base_id}' has no cached {', '.join(missing)} under {raw}: run "
                                f"`apgbench datasets {verb}` first.")
    try:  # the base dataset's recorded raw hashes, so the files are not hashed again
        manifest = json.loads((raw.parent / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        manifest = {}
    hashes = {name: digest for name, digest in manifest.get("raw", {}).items() if (raw / name).is_file()}
    with _lock(config, data_root):
        return _prepare_from_files(config, data_root, files, origin=f"cache of '{config.base_id}'",
                                   keep_extracted=keep_extracted, hashes=hashes)


def _expected_file(config: DatasetConfig, path: Path) -> RemoteFile:
    files = config.source.files
    for remote in files:
        if remote.filename == path.name:
            return remote
    if len(files) == 1:
        return files[0]
    names = ", ".join(f.filename for f in files)
    raise ValueError(f"'{path.name}' is not one of the files of dataset '{config.id}' ({names}).")


def import_dataset(config: DatasetConfig, path: str | os.PathLike, data_root=None, *, verify: bool = True,
                   keep_extracted: bool = False) -> tuple[Path, list[str]]:
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
        raise FileNotFoundError(f"{path} does not exist.")
    notes: list[str] = []
    with _lock(config, data_root):
        expected = {f.filename for f in config.source.files}
        if path.is_dir() and not any((path / name).is_file() for name in expected):
            out = _prepared(config, data_root)
            n = prepare_dataset(config, path, out)
            _finish(config, data_root, {}, "import-folder", n, notes, source_path=str(path.resolve()))
            return out, notes
        candidates = [path / name for name in sorted(expected) if (path / name).is_file()] if path.is_dir() \
            else [path]
        raw = dataset_dir(config, data_root) / "raw"
        raw.mkdir(parents=True, exist_ok=True)
        digests: dict[str, str] = {}
        for candidate in candidates:
            remote = _expected_file(config, candidate)
            digest = file_sha256(candidate)
            if remote.sha256 and digest != remote.sha256:
                if verify:
                    raise ChecksumError(candidate.name, remote.sha256, digest,
                                        " Pass --no-verify to use this copy anyway.")
                message = (f"'{candidate.name}' differs from the published file (sha256 {digest}, expected "
                           f"{remote.sha256}); results may not match the paper.")
                warnings.warn(message, UserWarning, stacklevel=2)
                notes.append(message)
            elif not remote.sha256:
                notes.append(f"No published checksum for '{remote.filename}'; recorded sha256 {digest}.")
            target = raw / remote.filename
            tmp = target.with_name(target.name + ".partial")
            shutil.copyfile(candidate, tmp)
            os.replace(tmp, target)
            digests[target.name] = digest
        # Datasets with several files (e.g. images + annotations) may be imported one file at a time.
        present = [raw / f.filename for f in config.source.files if (raw / f.filename).is_file()]
        missing = [f.filename for f in config.source.files if not (raw / f.filename).is_file()]
        if missing:
            raise FileNotFoundError(f"Dataset '{config.id}' still needs {', '.join(missing)}: import it too (or "
                                    "pass a folder holding all its files).")
        previous = read_manifest(config, data_root).get("raw", {})
        digests = {**{p.name: previous[p.name] for p in present if p.name in previous}, **digests}
        return _prepare_from_files(config, data_root, present, origin="import", keep_extracted=keep_extracted,
                                   notes=notes, hashes=digests), notes


def _prepare_from_files(config: DatasetConfig, data_root, files: list[Path], *, origin: str,
                        keep_extracted: bool, notes: list[str] | None = None,
                        hashes: dict[str, str] | None = None) -> Path:
    folder = dataset_dir(config, data_root)
    by_name = {f.filename: f for f in config.source.files}
    archives = [f for f in files if _extract(by_name.get(f.name), f)]
    plain = [f for f in files if f not in archives]
    try:
        extracted = safe_extract(archives, folder / "extracted", nested=config.source.nested_archives,
                                 copy_files=plain)
    except ValueError:
        # A file without a published checksum can only be judged by unpacking it: drop it so the next
        # attempt fetches it again instead of reusing a broken copy.
        for f in archives:
            remote = by_name.get(f.name)
            if remote is not None and remote.sha256 is None and origin == "download":
                f.unlink(missing_ok=True)
        raise
    out = _prepared(config, data_root)
    try:
        n = prepare_dataset(config, extracted, out)
    finally:
        if not keep_extracted:
            shutil.rmtree(extracted, ignore_errors=True)
    hashes = dict(hashes or {})
    for f in files:  # downloads with a published hash were verified by pooch; hash the others now
        if f.name not in hashes:
            known = by_name[f.name].sha256 if f.name in by_name and origin == "download" else None
            hashes[f.name] = known or file_sha256(f)
    _finish(config, data_root, hashes, origin, n, notes or [])
    return out


def _extract(remote: RemoteFile | None, path: Path) -> bool:
    if remote is not None and remote.extract is not None:
        return remote.extract
    return is_archive(path.name)


def _finish(config, data_root, hashes: dict, origin: str, n: int, notes: list[str], source_path: str = "") -> None:
    manifest = {"dataset": config.id, "origin": origin, "raw": hashes, "n_images": n,
                "prepared_sha256": file_sha256(_prepared(config, data_root)), "notes": notes}
    if source_path:
        manifest["source_path"] = source_path
    _write_manifest(config, data_root, manifest)


def dataset_status(config: DatasetConfig, data_root=None) -> dict:
    """Cache status for ``datasets list``: prepared or not, image count, bytes on disk, manual or not."""
    folder = dataset_dir(config, data_root)
    manifest = read_manifest(config, data_root)
    on_disk = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0
    return {"id": config.id, "domain": config.domain, "builtin": config.builtin, "manual": config.manual,
            "prepared": config.builtin or is_prepared(config, data_root),
            "n_images": manifest.get("n_images", config.n_images or config.format.options.get("n_images")),
            "bytes": on_disk,
            "size": " + ".join(f.size for f in config.source.files if f.size) or None}


def verify_dataset(config: DatasetConfig, data_root=None) -> list[tuple[str, bool, str]]:
    """Re-hash a dataset's cached raw files and prepared file.

    Returns
    -------
    list of (name, ok, message)
        One row per checked file; empty if nothing is cached.
    """
    folder = dataset_dir(config, data_root)
    manifest = read_manifest(config, data_root)
    rows: list[tuple[str, bool, str]] = []
    by_name = {f.filename: f for f in config.source.files}
    raw = folder / "raw"
    for path in sorted(raw.glob("*")) if raw.is_dir() else []:
        if not path.is_file() or path.name not in by_name:
            continue
        published = by_name[path.name].sha256
        expected = manifest.get("raw", {}).get(path.name) or published
        digest = file_sha256(path)
        if expected is None:
            rows.append((f"raw/{path.name}", True, f"no reference hash; sha256 {digest}"))
        elif digest != expected:
            rows.append((f"raw/{path.name}", False, f"expected {expected}, got {digest}"))
        else:
            differs = published is not None and digest != published
            rows.append((f"raw/{path.name}", True, "ok (imported copy differs from the published file)"
                         if differs else "ok"))
    prepared = folder / "prepared.h5"
    if prepared.is_file():
        expected = manifest.get("prepared_sha256")
        digest = file_sha256(prepared)
        ok = expected is None or digest == expected
        rows.append(("prepared.h5", ok, "ok" if expected and ok else
                     ("no manifest entry" if expected is None else f"expected {expected}, got {digest}")))
    return rows
