"""Dataset registry: one YAML per dataset in ``configs/datasets/``, found by walking the folder."""

from __future__ import annotations

import functools
import inspect
import tempfile
from pathlib import Path

from pydantic import ValidationError

from ..config import DOMAINS, config_dir, load_yaml, unknown_id_message
from ..errors import InvalidInputError, UnknownIdError
from .schema import DatasetConfig


def _dataset_dir(directory: Path | None) -> Path:
    return Path(directory) if directory is not None else config_dir() / "datasets"


@functools.lru_cache(maxsize=8)
def _load_all(directory: Path) -> dict[str, DatasetConfig]:
    configs: dict[str, DatasetConfig] = {}
    for path in sorted(directory.glob("*.yaml")):
        config = load_dataset_config(path)
        if config.id in configs:
            raise InvalidInputError(f"Dataset id '{config.id}' is defined twice (second time in {path}).")
        configs[config.id] = config
    return configs


def load_dataset_config(path: str | Path) -> DatasetConfig:
    """Read and validate one dataset YAML; errors name the file and the offending keys."""
    try:
        data = load_yaml(path)
    except UnicodeDecodeError as err:
        raise InvalidInputError(
            f"{path} is not UTF-8 text (byte 0x{err.object[err.start]:02x} at position "
            f"{err.start}): save it with UTF-8 encoding."
        ) from None
    try:
        config = DatasetConfig.model_validate(data)
    except ValidationError as err:
        raise InvalidInputError(f"{path} is not a valid dataset config:\n{err}") from err
    if Path(path).stem != config.id:
        raise InvalidInputError(f"{path}: the file name must equal the dataset id '{config.id}'.")
    return config


def list_datasets(directory: Path | None = None) -> list[DatasetConfig]:
    """All dataset configs, built-in ones first, then by domain and id."""
    configs = _load_all(_dataset_dir(directory)).values()
    return sorted(configs, key=lambda c: (not c.builtin, DOMAINS.index(c.domain), c.id))


def get_dataset_config(dataset_id: str, directory: Path | None = None) -> DatasetConfig:
    """The config of one dataset (``id@variant`` for a variant); an unknown id raises ``KeyError`` suggesting
    the closest ids.
    """
    from .folder import registered_folder

    configs = _load_all(_dataset_dir(directory))
    dataset_id, _, variant = dataset_id.partition("@")
    if variant and dataset_id in configs:
        return configs[dataset_id].with_variant(variant)
    if dataset_id not in configs:
        folder = registered_folder(dataset_id)
        if folder is not None:
            return folder
        raise UnknownIdError(unknown_id_message("dataset", dataset_id, list(configs)))
    return configs[dataset_id]


def resolve_dataset_ids(
    selection: list[str], directory: Path | None = None, *, domain: str | None = None
) -> list[str]:
    """Expand a CLI selection into dataset ids (checked): ids, ``all``, ``builtin``, ``3d``, domains, folders.

    ``all``, ``builtin`` and domains select 2D test sets (the paper's 36, slice-wise for volumes); ``3d``
    selects the volumetric test sets (``<id>-3d``), which are named explicitly otherwise.
    A path-like item (``./my_data``, ``~/data/x``, or an existing folder that is not a dataset id) is a folder of
    your own images and labels (see :mod:`.folder`): it is registered for this process under an id made from
    its name, with ``domain`` (or the folder's ``apgbench.yaml``) as its domain, and prepared when first loaded.
    """
    from .folder import looks_like_folder, register_folder

    configs = list_datasets(directory)
    flat = [c for c in configs if not c.volumetric]
    ids: list[str] = []
    for item in selection:
        if item not in {c.id for c in configs} and looks_like_folder(item):
            chosen = [register_folder(item, domain).id]
        elif item == "all":
            chosen = [c.id for c in flat if not c.builtin]
        elif item == "builtin":
            chosen = [c.id for c in flat if c.builtin]
        elif item == "3d":
            chosen = [c.id for c in configs if c.volumetric and not c.builtin]
        elif item in {c.domain for c in configs}:
            chosen = [c.id for c in flat if c.domain == item and not c.builtin]
        else:
            chosen = [get_dataset_config(item, directory).id]
        ids.extend(i for i in chosen if i not in ids)
    return ids


def check_reader(config: DatasetConfig, path: str | Path | None = None) -> list[str]:
    """Problems with a config's reader and reader options, one sentence each (empty if none).

    The reader must be registered, and its options must be parameters of the reader function (required ones
    present). A reader taking ``**options`` (``image-folder``) checks the names itself: it is called on an empty
    folder, where it refuses unknown options before it looks for any file.

    Parameters
    ----------
    config : DatasetConfig
        A validated config (built-in datasets have no reader and pass).
    path : path, optional
        The YAML file, named in the messages (default: the dataset id).
    """
    from .readers import READERS, reader_names

    if config.builtin:
        return []
    where = str(path) if path is not None else f"dataset '{config.id}'"
    name, options = config.format.reader, dict(config.format.options)
    if name not in READERS:
        close = READERS.close_to(name)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return [f"{where}: unknown reader '{name}'{hint}; known readers: {', '.join(reader_names())}."]
    reader = READERS.get(name)
    parameters = list(inspect.signature(reader).parameters.values())[1:]  # after ``root``
    named = {p.name: p for p in parameters if p.kind is not inspect.Parameter.VAR_KEYWORD}
    if len(named) == len(parameters):
        unknown = sorted(set(options) - set(named))
        missing = [n for n, p in named.items() if p.default is inspect.Parameter.empty and n not in options]
        plural = "s" if len(unknown) > 1 else ""
        problems = (
            [
                (
                    f"{where}: unknown option{plural} {', '.join(map(repr, unknown))} for reader '{name}'; it "
                    f"accepts {', '.join(named)}."
                )
            ]
            if unknown
            else []
        )
        if missing:
            problems.append(
                f"{where}: reader '{name}' needs option{'s' if len(missing) > 1 else ''} "
                f"{', '.join(map(repr, missing))}."
            )
        return problems
    specs = [{k: v for k, v in options.items() if k not in named}]
    specs += [{**specs[0], **spec} for spec in options.get("sets") or [] if isinstance(spec, dict)]
    for spec in specs:
        with tempfile.TemporaryDirectory() as empty:
            try:
                reader(Path(empty), **spec)
            except TypeError as err:
                return [f"{where}: bad options for reader '{name}': {err}."]
            except Exception:
                continue
    return []
