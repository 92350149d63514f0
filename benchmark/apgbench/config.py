"""Settings shared by the whole package: where data, results and configs live, and YAML loading."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Generic, TypeVar

import yaml

from .errors import InvalidInputError, NotFoundError, UnknownIdError

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
    raise NotFoundError(
        "No apgbench configs folder found; set APGBENCH_CONFIG_DIR to the repository's configs/."
    )


def load_yaml(path: str | os.PathLike) -> Any:
    """Read one YAML file, with the file named in any parse error."""
    try:
        with open(path, encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except yaml.YAMLError as err:
        raise InvalidInputError(f"{path} is not valid YAML: {err}") from err


def close_ids(given: str, known: Iterable[str]) -> list[str]:
    """Up to three known ids close to ``given`` (typos), best first."""
    return difflib.get_close_matches(given, list(known), n=3, cutoff=0.5)


def unknown_id_message(kind: str, given: str, known: list[str], *, listing: str | None = None) -> str:
    """One-sentence error for an unknown id, suggesting the closest known ids.

    ``listing`` is the command that lists them all (default ``apgbench <kind>s list``); without one
    (``listing=""``) the known ids are named instead.
    """
    close = close_ids(given, known)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    listing = f"apgbench {kind}s list" if listing is None else listing
    see = f"Run `{listing}` to see all." if listing else f"Known {kind}s: {', '.join(sorted(known))}."
    return f"Unknown {kind} '{given}'.{hint} {see}"


T = TypeVar("T")


class Registry(Generic[T]):
    """Named entries of one kind (methods, readers), with the same errors for every kind.

    Parameters
    ----------
    kind : str
        What the entries are, singular (``method``), for messages.
    listing : str, optional
        The command that lists the entries (default ``apgbench <kind>s list``; ``""``: none, the error
        names the known entries).
    """

    def __init__(self, kind: str, *, listing: str | None = None) -> None:
        self.kind, self.listing = kind, listing
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        """Register ``entry`` as ``name``; a second, different entry of the same name is an error."""
        if name in self._entries and self._entries[name] is not entry:
            raise InvalidInputError(f"{self.kind.capitalize()} '{name}' is registered twice.")
        self._entries[name] = entry
        return entry

    def get(self, name: str) -> T:
        """The entry registered as ``name``; an unknown name raises :class:`UnknownIdError` with suggestions."""
        if name not in self._entries:
            raise UnknownIdError(
                unknown_id_message(self.kind, name, list(self._entries), listing=self.listing)
            )
        return self._entries[name]

    def close_to(self, name: str) -> list[str]:
        """Registered names close to ``name`` (for messages of their own format)."""
        return close_ids(name, self._entries)

    def remove(self, name: str) -> None:
        """Unregister ``name`` (tests that register entries of their own)."""
        self._entries.pop(name, None)

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        return list(self._entries)

    def as_dict(self) -> dict[str, T]:
        """A copy of the entries by name, in registration order."""
        return dict(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries


def split_ids(value: str | list[str] | None) -> list[str]:
    """Split comma-separated CLI ids (``"ais,apg"``) into a list, dropping blanks."""
    if value is None:
        return []
    parts = value if isinstance(value, list) else [value]
    return [p.strip() for part in parts for p in part.split(",") if p.strip()]
