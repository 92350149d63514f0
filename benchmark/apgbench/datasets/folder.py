"""A folder of your own images and labels is a dataset: ``apgbench run --dataset ./my_data ...``.

Two layouts are recognised (images: ``.tif``, ``.tiff``, ``.png``, ``.jpg``, ``.jpeg``, ``.npy``; 2D grey or RGB):

- ``images/`` + ``labels/`` (or ``masks/``): ``images/X.png`` pairs with ``labels/X.<ext>`` (same stem);
- flat files: ``X.tif`` pairs with ``X_label(s).<ext>``, ``X_mask(s).<ext>`` or ``X_cp_masks.png`` (Cellpose).

Label images are 2D integer instance labels (0 = background) in a lossless format (tif, png, npy). Other files
(notes, ``*_seg.npy`` Cellpose sessions) are ignored. An optional ``apgbench.yaml`` in the folder sets ``id``,
``name``, ``domain``, ``crop`` (centre crop size, default none), ``channels`` (``grey``, ``rgb``, ``as-is``) and
``prompt`` (the text prompt of concept models such as SAM3).

The dataset's id is the folder's name in kebab-case (``my_data`` -> ``my-data``). Its test split is every image
(label images without objects are dropped, as for the benchmark datasets), prepared once into the data cache
under ``<data_root>/folders/<id>/<content hash>/prepared.h5``: the hash covers every paired file, the
settings file and the domain, so an edited folder is a new dataset version (and the results store refuses to
mix versions).
Its config is kept there too (``config.json``), so commands in other processes (``report``, ``evaluate``,
``submit`` workers) know the id without the folder path; they use the newest prepared version.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from ..config import DOMAINS, ID_PATTERN
from ..files import sha256_file
from .readers import ReaderError
from .readers._base import Entry, natural_key, read_array
from .schema import DatasetConfig, Domain, Format, Preparation, Source, Split

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".npy")
LABEL_SUFFIXES = (".tif", ".tiff", ".png", ".npy")  # lossless only
LABEL_TAILS = (
    "_cp_masks",
    "_labels",
    "_label",
    "_masks",
    "_mask",
)  # longest first: "_cp_masks" ends in "_masks"
SETTINGS_FILE = "apgbench.yaml"
CONFIG_FILE = "config.json"  # the config of a prepared version, next to its prepared.h5
_REGISTERED: dict[str, FolderDatasetConfig] = {}


class FolderSettings(BaseModel):
    """The optional ``apgbench.yaml`` of a folder dataset."""

    model_config = ConfigDict(extra="forbid")
    id: str | None = None
    name: str | None = None
    domain: Domain | None = None
    crop: int | None = None
    channels: Literal["grey", "rgb", "as-is"] = "as-is"
    prompt: str | None = None


class FolderDatasetConfig(DatasetConfig):
    """A :class:`DatasetConfig` made from a local folder (see the module docstring)."""

    folder: str
    content_hash: str
    pairs: tuple[tuple[str, str], ...]

    def cache_dir(self, data_root: str | os.PathLike | None = None) -> Path:
        """``<data_root>/folders/<id>/<first 16 hex digits of the content hash>``."""
        from ..config import data_root as _data_root

        return _data_root(data_root) / "folders" / self.id / self.content_hash[:16]


def looks_like_folder(text: str) -> bool:
    """True if a ``--dataset`` value is a path rather than an id (``./x``, ``x/``, ``~/x``, ``/x``, ...)."""
    return any(sep in text for sep in ("/", os.sep)) or text.startswith((".", "~")) or Path(text).is_dir()


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", name.lower()).strip("-.")


def _files(folder: Path) -> list[Path]:
    return sorted(
        (p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")),
        key=lambda p: natural_key(p.name),
    )


def scan_folder(folder: str | os.PathLike) -> list[tuple[Path, Path]]:
    """The (image, label) file pairs of a folder dataset, in natural order of the image names.

    Raises
    ------
    ReaderError
        One sentence: the folder is missing or empty, files are unmatched (listed), a name is ambiguous, or a
        label image is lossy.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ReaderError(f"Dataset folder {folder} does not exist (or is not a folder).")
    label_dir = next((folder / n for n in ("labels", "masks") if (folder / n).is_dir()), None)
    if (folder / "images").is_dir() and label_dir is not None:
        images: dict[str, Path] = {}
        for path in _files(folder / "images"):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                _add(images, path.stem, path)
        labels: dict[str, Path] = {}
        for path in _files(label_dir):
            if path.suffix.lower() in IMAGE_SUFFIXES and not path.name.endswith("_seg.npy"):
                stem = path.stem
                if stem not in images:  # labels/X_masks.tif for images/X.tif is fine too
                    stem = next(
                        (
                            stem[: -len(t)]
                            for t in LABEL_TAILS
                            if stem.endswith(t) and stem[: -len(t)] in images
                        ),
                        stem,
                    )
                _add(labels, stem, path)
        layout = f"images/ and {label_dir.name}/ with the same file stems (or X_label(s), X_mask(s) labels)"
    else:
        images, labels = {}, {}
        for path in _files(folder):
            suffix, stem = path.suffix.lower(), path.stem
            if suffix not in IMAGE_SUFFIXES or path.name.endswith("_seg.npy"):
                continue
            tail = next((t for t in LABEL_TAILS if stem.endswith(t) and len(stem) > len(t)), None)
            if tail is None:
                _add(images, stem, path)
            else:
                _add(labels, stem[: -len(tail)], path)
        layout = "X.<ext> next to X_label(s)/X_mask(s)/X_cp_masks.<ext>, or images/ + labels/"
    if not images and not labels:
        raise ReaderError(f"No images found in {folder}: expected {layout} ({', '.join(IMAGE_SUFFIXES)}).")
    lonely_images = [p.name for stem, p in images.items() if stem not in labels]
    lonely_labels = [p.relative_to(folder).as_posix() for stem, p in labels.items() if stem not in images]
    if lonely_images or lonely_labels:
        parts = []
        if lonely_images:
            parts.append(f"{len(lonely_images)} image(s) without a label file ({_listing(lonely_images)})")
        if lonely_labels:
            parts.append(f"{len(lonely_labels)} label file(s) without an image ({_listing(lonely_labels)})")
        raise ReaderError(f"Unmatched files in {folder}: {' and '.join(parts)}; expected {layout}.")
    lossy = [p.name for p in labels.values() if p.suffix.lower() not in LABEL_SUFFIXES]
    if lossy:
        raise ReaderError(
            f"Label images must be lossless (tif, png or npy), but {_listing(lossy)} in {folder} are JPEG."
        )
    return [(images[stem], labels[stem]) for stem in sorted(images, key=natural_key)]


def _add(found: dict[str, Path], stem: str, path: Path) -> None:
    if stem in found:
        raise ReaderError(
            f"Both {found[stem].name} and {path.name} in {path.parent} claim the name '{stem}': keep "
            "one of them."
        )
    found[stem] = path


def _listing(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _settings(folder: Path) -> tuple[FolderSettings, bytes]:
    path = folder / SETTINGS_FILE
    if not path.is_file():
        return FolderSettings(), b""
    import yaml

    raw = path.read_bytes()
    try:
        return FolderSettings.model_validate(yaml.safe_load(raw.decode("utf-8")) or {}), raw
    except (UnicodeDecodeError, yaml.YAMLError, ValidationError) as err:
        detail = " ".join(str(err).split())
        raise ReaderError(f"{path} is not a valid folder-dataset settings file: {detail}") from None


def folder_config(
    folder: str | os.PathLike, domain: str | None = None, taken: set[str] | frozenset[str] = frozenset()
) -> FolderDatasetConfig:
    """Scan a folder dataset and describe it (nothing is read beyond the bytes hashed).

    Parameters
    ----------
    folder : path
        The folder (see the module docstring for its layouts).
    domain : str, optional
        ``nuclei-fluo``, ``cells-fluo``, ``cells-labelfree`` or ``nuclei-histo``; wins over ``apgbench.yaml``.
    taken : set of str
        Ids of the registered datasets, which a folder may not reuse.

    Raises
    ------
    ReaderError
        A bad folder, settings file, id or domain, in one sentence.
    """
    folder = Path(folder).expanduser().resolve()
    pairs = scan_folder(folder)
    settings, settings_bytes = _settings(folder)
    dataset_id = settings.id or _slug(folder.name)
    where = (
        f"set `id:` in {folder / SETTINGS_FILE}" if not settings.id else f"change `id:` in {SETTINGS_FILE}"
    )
    if not ID_PATTERN.match(dataset_id):
        raise ReaderError(
            f"The folder name '{folder.name}' gives no usable dataset id: {where} (lower-case "
            "letters, digits and '-')."
        )
    if dataset_id in taken:
        raise ReaderError(
            f"Folder {folder} would get the id '{dataset_id}' of a benchmark dataset: rename the "
            f"folder or {where}."
        )
    domain = domain or settings.domain
    if domain is None:
        raise ReaderError(
            f"Folder dataset '{dataset_id}' needs a domain, which picks the models of "
            f"domain-specific methods and its place in reports: pass --domain ({', '.join(DOMAINS)}) "
            f"or set `domain:` in {folder / SETTINGS_FILE}."
        )
    if domain not in DOMAINS:
        raise ReaderError(
            f"Unknown domain '{domain}' for folder dataset '{dataset_id}'; use one of {', '.join(DOMAINS)}."
        )
    relative = tuple(
        (i.relative_to(folder).as_posix(), lab.relative_to(folder).as_posix()) for i, lab in pairs
    )
    # The domain is part of the version: it picks the models, and each version keeps its own config.json.
    settings_bytes += f"\0domain={domain}".encode()
    return FolderDatasetConfig(
        id=dataset_id,
        name=settings.name or folder.name,
        domain=domain,
        citation="local data",
        licence="local data",
        description=f"Images and labels from the folder {folder}.",
        source=Source(kind="manual", instructions=f"Local folder {folder}; it is prepared when used."),
        format=Format(reader="local-folder"),
        split=Split(description="Every image of the folder.", rule="all"),
        preparation=Preparation(crop=settings.crop, channels=settings.channels),
        prompt=settings.prompt,
        folder=str(folder),
        content_hash=_content_hash(folder, relative, settings_bytes),
        pairs=relative,
    )


def register_folder(folder: str | os.PathLike, domain: str | None = None) -> FolderDatasetConfig:
    """Describe a folder dataset and make its id known to ``get_dataset_config`` in this process."""
    from .registry import list_datasets

    config = folder_config(folder, domain, taken={c.id for c in list_datasets()})
    known = _REGISTERED.get(config.id)
    if known is not None and known.folder != config.folder:
        raise ReaderError(
            f"Two dataset folders get the id '{config.id}' ({known.folder} and {config.folder}): "
            f"rename one or set `id:` in its {SETTINGS_FILE}."
        )
    _REGISTERED[config.id] = config
    return config


def registered_folder(
    dataset_id: str, data_root: str | os.PathLike | None = None
) -> FolderDatasetConfig | None:
    """The folder dataset ``dataset_id``, or None.

    The one registered in this process, else its newest version prepared under the data root (so that
    ``report``, ``evaluate`` and ``submit`` workers in other processes find it too).
    """
    if dataset_id in _REGISTERED:
        return _REGISTERED[dataset_id]
    from ..config import data_root as _data_root

    if not ID_PATTERN.match(dataset_id):
        return None
    versions = [
        p
        for p in (_data_root(data_root) / "folders" / dataset_id).glob(f"*/{CONFIG_FILE}")
        if (p.parent / "prepared.h5").is_file()
    ]
    if not versions:
        return None
    newest = max(versions, key=lambda p: (p.parent / "prepared.h5").stat().st_mtime_ns)
    try:
        return FolderDatasetConfig.model_validate_json(newest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def prepare_folder(config: FolderDatasetConfig, data_root: str | os.PathLike | None = None) -> Path:
    """The prepared test split of a folder dataset, prepared now if this version is not cached yet."""
    from filelock import FileLock

    from .prepare import iter_samples
    from .prepared import write_prepared

    out = config.cache_dir(data_root) / "prepared.h5"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out.parent / ".lock")):
        if out.is_file():
            return out
        folder = Path(config.folder)
        key = _settings(folder)[1] + f"\0domain={config.domain}".encode()
        if _content_hash(folder, config.pairs, key) != config.content_hash:
            raise ReaderError(f"The folder {config.folder} changed while apgbench was using it: run again.")
        entries = [
            Entry(
                id=Path(image).stem,
                key=Path(image).stem,
                load=_loader(folder, image, label),
                meta={"source": image, "label_source": label},
            )
            for image, label in config.pairs
        ]
        try:
            write_prepared(out, config.id, iter_samples(config, entries))
        except ValueError as err:
            if "No test images were prepared" not in str(err):
                raise
            raise ReaderError(
                f"No label image in {folder} has any object (all are 0), so there is nothing to score."
            ) from None
        tmp = out.parent / (CONFIG_FILE + ".partial")
        tmp.write_text(config.model_dump_json(indent=2), encoding="utf-8")
        os.replace(tmp, out.parent / CONFIG_FILE)
    return out


def _content_hash(folder: Path, pairs: tuple[tuple[str, str], ...], settings_bytes: bytes) -> str:
    """sha256 over the settings file and the names and bytes of every paired file."""
    digest = hashlib.sha256(settings_bytes)
    for pair in pairs:
        for relative in pair:
            path = folder / relative
            if not path.is_file():
                raise ReaderError(f"{path} disappeared while apgbench was using the folder {folder}.")
            digest.update(f"\0{relative}\0".encode())
            digest.update(sha256_file(path).encode())
    return digest.hexdigest()


def _loader(folder: Path, image_name: str, label_name: str):
    def load() -> tuple[np.ndarray, np.ndarray]:
        image = np.asarray(read_array(folder / image_name))
        labels = np.squeeze(read_array(folder / label_name))
        if image.ndim == 3 and image.shape[-1] == 1:
            image = image[..., 0]
        if image.ndim == 3 and image.shape[0] in (3, 4) and image.shape[-1] not in (3, 4):
            image = np.moveaxis(image, 0, -1)  # channels-first RGB(A)
        if image.ndim == 3 and image.shape[-1] == 4:
            image = image[..., :3]  # RGBA (PNG) -> RGB
        if (
            (image.ndim == 3 and labels.ndim == 3)
            or image.ndim not in (2, 3)
            or (image.ndim == 3 and image.shape[-1] not in (2, 3))
        ):
            raise ReaderError(
                f"{image_name} has shape {image.shape}: folder datasets take 2D grey or RGB images "
                "(volumes are not supported yet)."
            )
        if labels.ndim != 2:
            raise ReaderError(f"{label_name} is not a 2D label image (shape {labels.shape}).")
        if labels.dtype == bool or not (
            np.issubdtype(labels.dtype, np.integer) or np.array_equal(labels, np.round(labels))
        ):
            raise ReaderError(
                f"{label_name} holds {labels.dtype} values, not instance labels (integers, 0 = "
                "background, one id per object)."
            )
        if labels.size and labels.min() < 0:
            raise ReaderError(f"{label_name} holds negative label ids.")
        if image.shape[:2] != labels.shape:
            raise ReaderError(
                f"{image_name} is {image.shape[0]}x{image.shape[1]} but its labels {label_name} "
                f"are {labels.shape[0]}x{labels.shape[1]}."
            )
        return image, labels.astype(np.uint32, copy=False)

    return load
