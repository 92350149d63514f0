"""Dataset registry: one YAML per dataset in ``configs/datasets/``, found by walking the folder."""

from __future__ import annotations

import functools
from pathlib import Path

from pydantic import ValidationError

from ..config import DOMAINS, config_dir, load_yaml, unknown_id_message
from .schema import DatasetConfig


def _dataset_dir(directory: Path | None) -> Path:
    return Path(directory) if directory is not None else config_dir() / "datasets"


@functools.lru_cache(maxsize=8)
def _load_all(directory: Path) -> dict[str, DatasetConfig]:
    configs: dict[str, DatasetConfig] = {}
    for path in sorted(directory.glob("*.yaml")):
        config = load_dataset_config(path)
        if config.id in configs:
            raise ValueError(f"Dataset id '{config.id}' is defined twice (second time in {path}).")
        configs[config.id] = config
    return configs


def load_dataset_config(path: str | Path) -> DatasetConfig:
    """Read and validate one dataset YAML; errors name the file and the offending keys."""
    data = load_yaml(path)
    try:
        config = DatasetConfig.model_validate(data)
    except ValidationError as err:
        raise ValueError(f"{path} is not a valid dataset config:\n{err}") from err
    if Path(path).stem != config.id:
        raise ValueError(f"{path}: the file name must equal the dataset id '{config.id}'.")
    return config


def list_datasets(directory: Path | None = None) -> list[DatasetConfig]:
    """All dataset configs, built-in ones first, then by domain and id."""
    configs = _load_all(_dataset_dir(directory)).values()
    return sorted(configs, key=lambda c: (not c.builtin, DOMAINS.index(c.domain), c.id))


def get_dataset_config(dataset_id: str, directory: Path | None = None) -> DatasetConfig:
    """The config of one dataset (``id@variant`` for a variant); an unknown id raises ``KeyError`` suggesting
    the closest ids."""
    configs = _load_all(_dataset_dir(directory))
    dataset_id, _, variant = dataset_id.partition("@")
    if variant and dataset_id in configs:
        return configs[dataset_id].with_variant(variant)
    if dataset_id not in configs:
        raise KeyError(unknown_id_message("dataset", dataset_id, list(configs)))
    return configs[dataset_id]


def resolve_dataset_ids(selection: list[str], directory: Path | None = None) -> list[str]:
    """Expand ``all``, ``builtin`` and domain names in a CLI selection into dataset ids (checked)."""
    configs = list_datasets(directory)
    ids: list[str] = []
    for item in selection:
        if item == "all":
            chosen = [c.id for c in configs if not c.builtin]
        elif item == "builtin":
            chosen = [c.id for c in configs if c.builtin]
        elif item in {c.domain for c in configs}:
            chosen = [c.id for c in configs if c.domain == item and not c.builtin]
        else:
            chosen = [get_dataset_config(item, directory).id]
        ids.extend(i for i in chosen if i not in ids)
    return ids
