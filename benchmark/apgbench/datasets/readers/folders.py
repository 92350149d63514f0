"""Readers for image files paired with label files in folders (plain folders, CTC and repository layouts)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from . import register_reader
from ._base import Entry, ReaderError, check_pair, entry_id, find_base, natural_key, read_array, sorted_glob, \
    to_instances


def _label_path(base: Path, relative: str, subs: list[list[str]]) -> Path | None:
    """First existing label file given by the regex substitutions on the image's relative path."""
    for pattern, replacement in subs:
        candidate = base / re.sub(pattern, replacement, relative)
        if candidate.is_file():
            return candidate
    return None


def _group_of(relative: str, group: Any) -> str:
    if group is None:
        return ""
    if isinstance(group, int):
        parts = relative.split("/")
        return parts[group] if -len(parts) <= group < len(parts) else ""
    match = re.search(str(group), relative)
    return match.group(match.lastindex or 0) if match else ""


@register_reader("image-folder")
def read_image_folder(root: Path, *, sets: list[dict[str, Any]] | None = None, base: str | None = None,
                      images: str | None = None, label_sub: list | None = None, exclude: list[str] = (),
                      label_mode: str = "instances", missing_label: str = "error", group: Any = None,
                      mat_key: str | None = None) -> list[Entry]:
    """Paired image and label files.

    Parameters
    ----------
    root : Path
        Unpacked dataset folder.
    sets : list of dict, optional
        Several image sets, each with its own ``images``/``label_sub``/``base``/``group`` (e.g. Usiigaci's
        ``Mask R-CNN/train`` sets plus its example frames); the top-level keys give one set otherwise.
    base : str, optional
        Glob of the single folder (under ``root``) the paths are relative to, e.g. ``"Usiigaci-*"`` for a
        repository snapshot whose top folder carries the commit.
    images : str
        Glob of the image files, relative to ``base``.
    label_sub : [pattern, replacement] or list of them
        Regex substitution(s) turning an image's relative path into its label's; the first existing file wins.
    exclude : list of str
        Regexes of image paths to skip (e.g. ``_masks`` files that match the image glob).
    label_mode : str
        How labels are stored (see :func:`to_instances`).
    missing_label : {"error", "skip"}
        What to do with an image whose label file does not exist.
    group : int or str, optional
        Path component index, or a regex whose last group names the image's group (per-group splits).
    mat_key : str, optional
        Variable holding the instance map in ``.mat`` label files.
    """
    if sets is None:
        sets = [{"images": images, "label_sub": label_sub, "base": base, "group": group}]
    entries: list[Entry] = []
    for spec in sets:
        folder = find_base(root, spec.get("base", base))
        pattern = spec.get("images") or images
        if not pattern:
            raise ReaderError("The image-folder reader needs an 'images' glob.")
        subs = spec.get("label_sub", label_sub) or []
        subs = [subs] if subs and isinstance(subs[0], str) else list(subs)
        skip = [re.compile(p) for p in spec.get("exclude", exclude)]
        found = [p for p in sorted_glob(folder, pattern)
                 if not any(s.search(p.relative_to(folder).as_posix()) for s in skip)]
        if not found:
            raise ReaderError(f"No images match '{pattern}' under {folder}: wrong or incomplete data.")
        for image_path in found:
            relative = image_path.relative_to(folder).as_posix()
            label_path = _label_path(folder, relative, subs)
            if label_path is None:
                if missing_label == "skip":
                    continue
                raise ReaderError(f"No label file for image '{relative}' (looked for "
                                  f"{[re.sub(p, r, relative) for p, r in subs]}).")
            entries.append(Entry(
                id=entry_id(relative), key=image_path.stem, group=_group_of(relative, spec.get("group", group)),
                load=_loader(image_path, label_path, label_mode, mat_key, relative),
                meta={"source": relative, "label_source": label_path.relative_to(folder).as_posix()},
            ))
    _unique_ids(entries)
    return entries


def _loader(image_path: Path, label_path: Path, label_mode: str, mat_key: str | None, relative: str):
    def load():
        image = read_array(image_path)
        labels = to_instances(read_array(label_path, mat_key), label_mode)
        check_pair(image, labels, relative)
        return image, labels

    return load


def _unique_ids(entries: list[Entry]) -> None:
    seen: dict[str, int] = {}
    for entry in entries:
        if entry.id in seen:
            seen[entry.id] += 1
            entry.id = f"{entry.id}-{seen[entry.id]}"
        else:
            seen[entry.id] = 0


def sort_entries(entries: list[Entry]) -> list[Entry]:
    """Entries in natural order of their ids (helper for readers that collect from several places)."""
    return sorted(entries, key=lambda e: natural_key(e.id))
