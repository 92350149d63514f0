"""Readers for image files paired with label files in folders (plain folders, CTC and repository layouts)."""

from __future__ import annotations

import glob
import re
from pathlib import Path
from typing import Any

import numpy as np

from . import register_reader
from ._base import (
    Entry,
    ReaderError,
    check_pair,
    entry_id,
    find_base,
    read_array,
    sorted_glob,
    to_instances,
)


def _label_path(base: Path, relative: str, subs: list[list[str]]) -> Path | None:
    """First existing label file given by the regex substitutions on the image's relative path.

    A substituted path containing ``*`` is a glob that must match exactly one file.
    """
    for pattern, replacement in subs:
        target = re.sub(pattern, replacement, relative)
        if "*" in target:
            matches = sorted_glob(base, target)
            if len(matches) == 1:
                return matches[0]
            continue
        if (base / target).is_file():
            return base / target
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
def read_image_folder(root: Path, *, sets: list[dict[str, Any]] | None = None, **options: Any) -> list[Entry]:
    """Paired image and label files.

    Parameters
    ----------
    root : Path
        Unpacked dataset folder.
    sets : list of dict, optional
        Several image sets read one after the other, each with its own options below (e.g. Usiigaci's
        ``Mask R-CNN/train`` sets plus its example frames); the top-level options are their defaults.
    **options
        ``base``: glob of the single folder (under ``root``) paths are relative to, e.g. ``"Usiigaci-*"`` for a
        repository snapshot whose top folder carries the commit. ``images``: glob of the image files.
        ``label_sub``: [pattern, replacement] or a list of them, regex substitutions turning an image's
        relative path into its label's (first existing file wins; a result with ``*`` is a glob that must
        match one file). ``labels``: instead of ``label_sub``, a glob of label files paired with the images
        by sorted position (as the paper's code does with two natsorted lists). ``exclude``: regexes of
        image paths to skip. ``label_mode``: see :func:`to_instances`. ``missing_label``: ``error`` or
        ``skip``. ``group``: path component index, or regex whose last group names the image's group.
        ``order``: ``natural``, ``lexicographic`` or ``name``. ``top_order: listing``: images grouped by
        their top folder, the folders in the filesystem's listing order (an unsorted glob, as torch-em's
        NuInsSeg organ folders), each group in ``order``. ``check_readable``: drop image/label pairs that
        cannot be decoded, after pairing and before the split (the paper's CellBinDB code does).
        ``mat_key``: variable of ``.mat`` label files.
        ``flip_labels``: axis to reverse in the labels; ``clip_common``: crop image and labels to their common
        shape; ``drop_last_slice``: regexes of files whose last slice is dropped (GoNuclear fixes).
    """
    entries: list[Entry] = []
    for spec in sets or [{}]:
        entries.extend(_read_set(root, {**options, **spec}))
    _unique_ids(entries)
    return entries


_KNOWN = {
    "base",
    "images",
    "label_sub",
    "labels",
    "exclude",
    "label_mode",
    "missing_label",
    "group",
    "order",
    "check_readable",
    "mat_key",
    "flip_labels",
    "clip_common",
    "drop_last_slice",
    "top_order",
}


def _read_set(root: Path, opts: dict[str, Any]) -> list[Entry]:
    unknown = set(opts) - _KNOWN
    if unknown:
        raise TypeError(f"unknown image-folder options {sorted(unknown)}")
    folder = find_base(root, opts.get("base"))
    pattern, order = opts.get("images"), opts.get("order", "natural")
    if not pattern:
        raise ReaderError("The image-folder reader needs an 'images' glob.")
    skip = [re.compile(p) for p in opts.get("exclude", ())]
    found = [
        p
        for p in sorted_glob(folder, pattern, order)
        if not any(s.search(p.relative_to(folder).as_posix()) for s in skip)
    ]
    if not found:
        raise ReaderError(f"No images match '{pattern}' under {folder}: wrong or incomplete data.")
    if opts.get("top_order") == "listing":
        listing = [Path(p).name for p in glob.glob(f"{glob.escape(str(folder))}/*")]
        rank = {name: i for i, name in enumerate(listing)}
        found.sort(key=lambda p: rank.get(p.relative_to(folder).parts[0], len(rank)))  # stable: keeps order
    if opts.get("labels"):
        label_files = sorted_glob(folder, opts["labels"], order)
        if len(label_files) != len(found):
            raise ReaderError(
                f"Found {len(found)} images ('{pattern}') but {len(label_files)} label files "
                f"('{opts['labels']}') under {folder}."
            )
        pairs = list(zip(found, label_files))
    else:
        subs = opts.get("label_sub") or []
        subs = [subs] if subs and isinstance(subs[0], str) else list(subs)
        pairs = []
        for image_path in found:
            relative = image_path.relative_to(folder).as_posix()
            label_path = _label_path(folder, relative, subs)
            if label_path is None:
                if opts.get("missing_label", "error") == "skip":
                    continue
                raise ReaderError(
                    f"No label file for image '{relative}' (looked for "
                    f"{[re.sub(p, r, relative) for p, r in subs]})."
                )
            pairs.append((image_path, label_path))
    if opts.get("check_readable"):  # as the paper's CellBinDB code: drop pairs with an undecodable file
        pairs = [(i, lab) for i, lab in pairs if _readable(i) and _readable(lab)]
    entries = []
    for image_path, label_path in pairs:
        relative = image_path.relative_to(folder).as_posix()
        entries.append(
            Entry(
                id=entry_id(relative),
                key=image_path.stem,
                group=_group_of(relative, opts.get("group")),
                load=_loader(image_path, label_path, relative, opts),
                meta={"source": relative, "label_source": label_path.relative_to(folder).as_posix()},
            )
        )
    return entries


def _readable(path: Path) -> bool:
    try:
        read_array(path)
        return True
    except ReaderError:
        return False


def _loader(image_path: Path, label_path: Path, relative: str, opts: dict[str, Any]):
    def load():
        image = read_array(image_path)
        labels = to_instances(
            read_array(label_path, opts.get("mat_key")), opts.get("label_mode", "instances")
        )
        if opts.get("flip_labels") is not None:
            labels = np.flip(labels, axis=int(opts["flip_labels"]))
        if opts.get("clip_common"):
            common = tuple(min(a, b) for a, b in zip(image.shape, labels.shape))
            image = image[tuple(slice(0, n) for n in common)]
            labels = labels[tuple(slice(0, n) for n in common)]
        if any(re.search(p, relative) for p in opts.get("drop_last_slice", ())):
            image, labels = image[:-1], labels[:-1]
        check_pair(image, labels, relative)
        return image, np.ascontiguousarray(labels)

    return load


def _unique_ids(entries: list[Entry]) -> None:
    seen: dict[str, int] = {}
    for entry in entries:
        if entry.id in seen:
            seen[entry.id] += 1
            entry.id = f"{entry.id}-{seen[entry.id]}"
        else:
            seen[entry.id] = 0
