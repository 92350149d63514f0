"""Allocator tuning for CPU runs: freed tensor memory is kept for reuse instead of being handed back.

glibc's ``malloc`` serves every block above ``M_MMAP_THRESHOLD`` (at most 32 MiB) with its own ``mmap`` and
unmaps it on ``free``. CPU torch allocates through ``malloc``, so each large tensor (a ViT-B attention
matrix, SAM's mask-decoder activations for a batch of 32 prompts, ...) is faulted in page by page from fresh
zeroed memory, and freed again right after. On a 2-core machine the µSAM encoder spent 40% and APG's mask
decoding 45% of their CPU time in the kernel this way (``scripts/bench_family.py`` prints the ratios).

:func:`tune_malloc` sets ``M_MMAP_MAX=0`` (large blocks come from the heap, whose freed space is reused) and
a 1 GiB ``M_TRIM_THRESHOLD`` (free space below that is not returned to the system). It changes how fast a
run is, never what it computes (``tests/test_malloc.py`` checks a model's outputs bit for bit). The cost:
the process keeps its peak memory until it exits. Every run (``apgbench run``, ``submit`` workers, the
Python runner) and ``apgbench sweep`` calls it unless ``APGBENCH_TUNE_MALLOC=0``; other platforms (macOS,
Windows, musl) are left as they are.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

# glibc's mallopt parameter numbers (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
TRIM_THRESHOLD = 2**30
ENV = "APGBENCH_TUNE_MALLOC"
_state: dict[str, str | None] = {"applied": None}


def tune_malloc() -> str | None:
    """Apply the tuning once per process (glibc only); the setting applied, or None where it is not.

    Returns None without changing anything when ``$APGBENCH_TUNE_MALLOC`` is ``0``, on a libc other than
    glibc, or when ``mallopt`` refuses.
    """
    if _state["applied"] is not None:
        return _state["applied"]
    if os.environ.get(ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(_M_MMAP_MAX, 0) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    except (OSError, AttributeError):
        return None
    if ok:
        _state["applied"] = f"glibc mallopt: M_MMAP_MAX=0, M_TRIM_THRESHOLD={TRIM_THRESHOLD}"
    return _state["applied"]


def malloc_setting() -> str | None:
    """What :func:`tune_malloc` applied in this process (for ``run.json``), or None."""
    return _state["applied"]


__all__ = ["ENV", "malloc_setting", "tune_malloc"]
