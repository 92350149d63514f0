"""Crash-safe replacement of a dataset's cached files: build everything aside, then commit with a redo log.

A download or import never touches ``<id>/raw``, ``<id>/prepared.h5`` or ``<id>/manifest.json`` while it works.
New raw copies, the unpacked files and the new prepared file are built in the sibling folder ``<id>/.staging``.
Only when everything succeeded is the marker ``.staging/COMMIT`` written (an atomic rename), after which the
staged files are moved over the old ones. Whoever takes the dataset's lock next calls :func:`recover` first:

- with a ``COMMIT`` marker (killed while moving), the remaining moves are finished (roll forward);
- without it (killed or failed while working), ``.staging`` is deleted, so the old copy stays as it was;
- temporary files of killed downloads (``raw/.<file>.*.partial``) and other ``*.partial`` leftovers are deleted.

So after ``kill -9`` at any point, the cache holds either the complete old state or the complete new one.
"""

from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

from .download import PARTIAL_SUFFIX

STAGING, COMMIT = ".staging", "COMMIT"


class Staging:
    """The staging folder of one dataset folder (``<data_root>/<id>``).

    Parameters
    ----------
    folder : path
        The dataset's cache folder; the caller holds its lock.
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.path = self.folder / STAGING
        self.raw = self.path / "raw"
        self.extracted = self.path / "extracted"
        self.prepared = self.path / "prepared.h5"

    def commit(self, manifest: dict | None) -> None:
        """Write ``manifest``, mark the staged state complete and move it over the old one."""
        if manifest is not None:
            (self.path / "manifest.json").write_text(
                json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8"
            )
        marker = self.path / (COMMIT + PARTIAL_SUFFIX)
        marker.write_text("complete\n", encoding="utf-8")
        os.replace(marker, self.path / COMMIT)  # from here on, recover() rolls forward
        _apply(self.folder)


@contextmanager
def staging(folder: str | os.PathLike):
    """A fresh :class:`Staging` for the duration of the block; deleted if the block does not commit.

    The caller holds the dataset's lock (see ``manage``).
    """
    stage = Staging(folder)
    recover(stage.folder)
    stage.path.mkdir(parents=True)
    try:
        yield stage
    finally:
        if stage.path.exists() and not (stage.path / COMMIT).exists():
            shutil.rmtree(stage.path, ignore_errors=True)


def recover(folder: str | os.PathLike) -> None:
    """Finish a committed change or drop an unfinished one, and delete leftovers of killed work.

    Call it with the dataset's lock held, before reading or changing the cache.
    """
    folder = Path(folder)
    stage = folder / STAGING
    if (stage / COMMIT).is_file():
        _apply(folder)
    if stage.exists():
        shutil.rmtree(stage)
    for leftover in [
        *folder.glob(f"*{PARTIAL_SUFFIX}"),
        *(folder / "raw").glob(f"*{PARTIAL_SUFFIX}"),
        *(folder / "raw").glob(f".*{PARTIAL_SUFFIX}"),
    ]:
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


def _apply(folder: Path) -> None:
    """Move the staged files over the old ones; every step can be repeated after a crash."""
    stage = folder / STAGING
    if (stage / "raw").is_dir():
        (folder / "raw").mkdir(exist_ok=True)
        for path in sorted((stage / "raw").iterdir()):
            if path.is_file() and not path.name.endswith(PARTIAL_SUFFIX):
                os.replace(path, folder / "raw" / path.name)
    if (stage / "prepared.h5").is_file():
        # Files unpacked from the old raw copy no longer match: keep only what this change unpacked. The old
        # folder goes into the staging folder first (or an empty stand-in), so a repeated step never moves the
        # new one away.
        old = stage / "extracted.old"
        if not old.exists():
            if (folder / "extracted").exists():
                os.replace(folder / "extracted", old)
            else:
                old.mkdir()
        if (stage / "extracted").is_dir():
            os.replace(stage / "extracted", folder / "extracted")
        os.replace(stage / "prepared.h5", folder / "prepared.h5")
    if (stage / "manifest.json").is_file():
        os.replace(stage / "manifest.json", folder / "manifest.json")
    shutil.rmtree(stage)
