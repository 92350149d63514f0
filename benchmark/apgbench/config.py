"""Settings shared by the whole package: where data, results and configs live, and YAML loading."""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any

import yaml

DOMAINS = ("nuclei-fluo", "cells-fluo", "cells-labelfree", "nuclei-histo")
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9.]*(?:-[a-z0-9.]+)*$")
PACKAGE_DIR = Path(__file__).resolve().parent


def data_root(path: str | os.PathLike | None = None) -> Path:
    """Root of the prepared-dataset cache: ``path``, else ``$APGBENCH_DATA_DIR``, else ``./datasets``."""
    return Path(path or os.environ.get("APGBENCH_DATA_DIR") or "datasets")


def results_root(path: str | os.PathLike | None = None) -> Path:
    """Root of the results store: ``path``, else ``$APGBENCH_RESULTS_DIR``, else ``./results``."""
    return Path(path or os.environ.get("APGBENCH_RESULTS_DIR") or "results")


def config_dir() -> Path:
    """The folder holding ``datasets/`` and ``methods/`` YAML configs.

    ``$APGBENCH_CONFIG_DIR`` wins; otherwise the repository's ``configs/`` (source checkout or editable
    install), else ``apgbench/configs``, the same folder shipped as package data in a wheel or plain install
    (pyproject maps ``configs/`` into the package: there is one copy in the repository).
    """
    env = os.environ.get("APGBENCH_CONFIG_DIR")
    if env:
        return Path(env)
    for candidate in (PACKAGE_DIR.parent.parent / "configs", PACKAGE_DIR / "configs"):
        if (candidate / "datasets").is_dir():
            return candidate
    raise FileNotFoundError("No apgbench configs folder found; set APGBENCH_CONFIG_DIR to the repository's configs/.")


def load_yaml(path: str | os.PathLike) -> Any:
    """Read one YAML file, with the file named in any parse error."""
    try:
        with open(path, encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except yaml.YAMLError as err:
        raise ValueError(f"{path} is not valid YAML: {err}") from err


def unknown_id_message(kind: str, given: str, known: list[str]) -> str:
    """One-sentence error for an unknown id, suggesting the closest known ids."""
    close = difflib.get_close_matches(given, known, n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return f"Unknown {kind} '{given}'.{hint} Run `apgbench {kind}s list` to see all."


def split_ids(value: str | list[str] | None) -> list[str]:
    """Split comma-separated CLI ids (``"ais,apg"``) into a list, dropping blanks."""
    if value is None:
        return []
    parts = value if isinstance(value, list) else [value]
    return [p.strip() for part in parts for p in part.split(",") if p.strip()]
