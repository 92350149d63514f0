"""Method registry.

Built-in methods live one family per module in this package and register with :func:`register_method`.
Method modules import only numpy and the standard library at module level; their deep-learning libraries
are imported inside ``_prepare``. So listing methods never imports torch, and a missing extra only
matters when that method runs. Third-party methods register through the ``apgbench.methods`` entry-point
group (``name = "package.module:Class"``). What apgbench knows about a method is its :class:`MethodMeta`.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from ..config import ID_PATTERN, Registry
from ..errors import InvalidInputError
from .base import (
    MethodUnavailableError,
    ParameterError,
    Segmenter,
    check_labels,
    check_params,
    install_hint,
    missing_modules,
    missing_text,
    paint_masks_last_wins,
)
from .meta import MethodMeta, one_model

__all__ = [
    "MethodMeta",
    "MethodUnavailableError",
    "ParameterError",
    "Segmenter",
    "available_methods",
    "check_labels",
    "check_params",
    "get_method",
    "method_order",
    "method_status",
    "missing_modules",
    "one_model",
    "paint_masks_last_wins",
    "register_method",
    "trained_on",
]

# Modules holding the built-in methods; each registers its classes when imported.
BUILTIN_MODULES = (
    "apgbench.methods.classic",
    "apgbench.methods.sam",
    "apgbench.methods.sam2",
    "apgbench.methods.sam3",
    "apgbench.methods.cellpose",
    "apgbench.methods.cellsam",
    "apgbench.methods.musam",
    "apgbench.methods.instanseg",
    "apgbench.methods.stardist",
)

_REGISTRY: Registry[type[Segmenter]] = Registry("method")
_LOADED = False


def register_method(cls: type[Segmenter]) -> type[Segmenter]:
    """Class decorator that registers a :class:`Segmenter` under its ``name``."""
    if not ID_PATTERN.match(cls.name):
        raise InvalidInputError(f"Method name '{cls.name}' must be kebab-case.")
    return _REGISTRY.add(cls.name, cls)


def _load_all() -> None:
    global _LOADED
    if _LOADED:
        return
    for module in BUILTIN_MODULES:
        importlib.import_module(module)
    for entry in entry_points(group="apgbench.methods"):
        if entry.name not in _REGISTRY:
            cls = entry.load()
            if cls.name != entry.name:
                raise InvalidInputError(f"Entry point '{entry.name}' loads a method named '{cls.name}'.")
            register_method(cls)
    _LOADED = True


def available_methods() -> dict[str, type[Segmenter]]:
    """All registered methods by id, in registration order."""
    _load_all()
    return _REGISTRY.as_dict()


def get_method(name: str) -> type[Segmenter]:
    """The method class registered as ``name``; unknown names raise ``KeyError`` with suggestions."""
    _load_all()
    return _REGISTRY.get(name)


def method_status(cls: type[Segmenter]) -> tuple[bool, str]:
    """Whether a method can run here and, if not, why (missing import names), without importing them."""
    missing = missing_modules(cls.requires)
    if missing:
        return False, f"needs {missing_text(missing)}: {install_hint(cls)}"
    return cls.meta.status()


def method_order() -> tuple[str, ...]:
    """Ids of the methods with a ``table_order``, in that order: the column order of tables and plots."""
    ordered = [
        (cls.meta.table_order, name)
        for name, cls in available_methods().items()
        if cls.meta.table_order is not None
    ]
    return tuple(name for _, name in sorted(ordered))


def trained_on(dataset: str) -> list[str]:
    """Ids of the methods whose training data include the training split of ``dataset`` (variants: its base),
    in the tables' column order.
    """
    base = dataset.split("@", 1)[0]
    trained = [
        (cls.meta.table_order is None, cls.meta.table_order or 0, name)
        for name, cls in available_methods().items()
        if base in cls.meta.trained_on
    ]
    return [name for *_, name in sorted(trained)]  # in table order
