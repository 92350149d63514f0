"""Datasets: registry of YAML configs, prepared test splits, built-in synthetic data.

The main entry point is :func:`load_dataset`, which returns something iterable over :class:`Sample`.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..config import data_root as _data_root
from ..errors import NotFoundError
from .prepared import PreparedDataset, Sample, write_prepared
from .registry import get_dataset_config, list_datasets, load_dataset_config, resolve_dataset_ids
from .schema import DatasetConfig

__all__ = [
    "DatasetConfig",
    "DatasetNotPreparedError",
    "ManualDatasetError",
    "PreparedDataset",
    "Sample",
    "dataset_status",
    "download_dataset",
    "get_dataset_config",
    "import_dataset",
    "list_datasets",
    "load_dataset",
    "load_dataset_config",
    "prepared_path",
    "resolve_dataset_ids",
    "verify_dataset",
    "write_prepared",
]


class DatasetNotPreparedError(NotFoundError):
    """The dataset's test split is not in the cache yet."""


def prepared_path(config: DatasetConfig, data_root: str | os.PathLike | None = None) -> Path:
    """Where the prepared HDF5 of a dataset lives: ``<data_root>/<id>/prepared.h5`` (folder datasets: see
    :mod:`.folder`).
    """
    from .folder import FolderDatasetConfig

    if isinstance(config, FolderDatasetConfig):
        return config.cache_dir(data_root) / "prepared.h5"
    return _data_root(data_root) / config.id / "prepared.h5"


def load_dataset(dataset: str | DatasetConfig, data_root: str | os.PathLike | None = None):
    """Open a dataset's test split.

    Parameters
    ----------
    dataset : str or DatasetConfig
        Dataset id or config (a folder dataset's config is prepared here on first use).
    data_root : path, optional
        Cache root (default ``$APGBENCH_DATA_DIR`` or ``./datasets``).

    Returns
    -------
    dataset : SyntheticDataset or PreparedDataset
        Iterable over :class:`Sample`, with ``image_ids``, ``len()``, ``get(image_id)`` and ``fingerprint()``.

    Raises
    ------
    DatasetNotPreparedError
        If a downloadable dataset has not been prepared; the message says which command does it.
    """
    config = dataset if isinstance(dataset, DatasetConfig) else get_dataset_config(dataset)
    if config.builtin:
        from .synthetic import SyntheticDataset

        return SyntheticDataset(config)
    from .folder import FolderDatasetConfig, prepare_folder

    if isinstance(config, FolderDatasetConfig):  # prepared on first use, once per version of the folder
        return PreparedDataset(prepare_folder(config, data_root), config.id)
    path = prepared_path(config, data_root)
    if not path.exists():
        verb = f"import {config.id} PATH" if config.manual else f"download {config.id}"
        if config.variant:
            verb = f"prepare {config.base_id} --variant {config.variant}"
        raise DatasetNotPreparedError(
            f"Dataset '{config.id}' is not prepared under {path.parent}: run `apgbench datasets {verb}` first."
        )
    return PreparedDataset(path, config.id)


# Download/import/verify live in manage.py; imported last because manage uses prepared_path above.
from .manage import (
    ManualDatasetError,
    dataset_status,
    download_dataset,
    import_dataset,
    verify_dataset,
)
