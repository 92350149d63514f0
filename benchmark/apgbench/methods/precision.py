"""Numerical precision of the SAM-family wrappers: the ``precision`` parameter (``fp32``, ``bf16``, ``fp16``).

``fp32`` is the paper's: its SAM and µSAM runs used float32 models without autocast (so does SAM 2 here; CellPose-SAM's
own ``use_bfloat16`` switch, on by default as in cellpose 4, is a separate parameter of that method).
``bf16`` and ``fp16`` run chosen modules under :func:`torch.autocast` and cast their floating outputs back
to float32, so the library code around them (micro-sam's ``.numpy()`` on the embeddings, SAM's upsampling,
thresholds and stability scores) sees what it expects. The weights stay float32; autocast runs matrix
products and convolutions in the lower precision. This is opt-in: a lower precision changes masks
(``scripts/bench_precision.py`` measures how much and how much faster it is).

Only the standard library is imported at module level; torch is imported when a lower precision is used.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

#: Accepted values and the torch dtype name each stands for.
PRECISIONS = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
#: The paper's precision, the default of every method that has the parameter.
DEFAULT_PRECISION = "fp32"
_ORIGINAL = "_apgbench_original_forward"


def dtype_name(precision: str) -> str:
    """The torch dtype name of ``precision`` (``bf16`` -> ``bfloat16``), as recorded in ``run.json``."""
    return PRECISIONS[precision]


def autocast(precision: str, device: Any) -> AbstractContextManager:
    """A context that runs torch operations in ``precision`` on ``device``'s type (a no-op for fp32)."""
    if precision == DEFAULT_PRECISION:
        return nullcontext()
    import torch

    return torch.autocast(device_type=torch.device(device).type, dtype=getattr(torch, PRECISIONS[precision]))


def to_float32(value: Any) -> Any:
    """Floating tensors in ``value`` (a tensor, or tuples, lists and dicts of them) cast to float32."""
    import torch

    if isinstance(value, torch.Tensor):
        return value.float() if value.is_floating_point() else value
    if isinstance(value, dict):
        return {k: to_float32(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)) and not hasattr(value, "_fields"):
        return type(value)(to_float32(v) for v in value)
    return value


def set_module_precision(modules: list, precision: str, device: Any) -> None:
    """Make each module's ``forward`` run in ``precision`` and return float32 outputs.

    Idempotent: a module set before is reset from its original ``forward`` (so a model shared by several
    runs is wrapped once), and ``fp32`` restores the original.
    """
    for module in modules:
        if _ORIGINAL in vars(module):
            del module.forward
            delattr(module, _ORIGINAL)
        if precision == DEFAULT_PRECISION:
            continue
        original = module.forward

        def forward(*args, _original=original, **kwargs):
            with autocast(precision, device):
                return to_float32(_original(*args, **kwargs))

        object.__setattr__(module, _ORIGINAL, original)
        object.__setattr__(module, "forward", forward)


__all__ = [
    "DEFAULT_PRECISION",
    "PRECISIONS",
    "autocast",
    "dtype_name",
    "set_module_precision",
    "to_float32",
]
