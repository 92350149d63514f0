"""Check a method wrapper in seconds: one built-in image per domain, output validated, nothing stored."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from .config import DOMAINS
from .datasets import list_datasets, load_dataset
from .methods import get_method
from .metrics import mean_segmentation_accuracy


@dataclass
class SmokeResult:
    """Outcome of one smoke image: which dataset, the score, the time, and the error if it failed."""

    dataset: str
    domain: str
    msa: float | None
    seconds: float
    n_objects: int
    error: str | None = None


def smoke_test(
    method: str,
    *,
    params: dict[str, Any] | None = None,
    device: str = "cpu",
    domains: tuple[str, ...] = DOMAINS,
) -> list[SmokeResult]:
    """Build ``method`` once, segment the first image of each built-in dataset, and score it.

    Errors of ``segment`` (bad shapes, dtypes, crashes) are caught and reported per domain, so a wrapper
    author sees every problem in one go; errors of ``prepare`` (missing extra or weights) propagate.
    """
    method_cls = get_method(method)
    results = []
    with method_cls(**(params or {})) as segmenter:  # built once; prepare reloads only if the domain needs it
        # 2D images only: the 3D built-in (synthetic-nuclei-3d) is for `apgbench run`.
        for config in (c for c in list_datasets() if c.builtin and c.domain in domains and not c.volumetric):
            sample = next(iter(load_dataset(config)))
            segmenter.prepare(device=device, domain=config.domain)
            start = time.perf_counter()
            try:
                labels = segmenter.segment(sample.image)
            except Exception as err:
                results.append(
                    SmokeResult(
                        config.id,
                        config.domain,
                        None,
                        time.perf_counter() - start,
                        0,
                        f"{type(err).__name__}: {err}",
                    )
                )
                continue
            seconds = time.perf_counter() - start
            n_objects = int(np.count_nonzero(np.unique(labels)))
            results.append(
                SmokeResult(
                    config.id,
                    config.domain,
                    mean_segmentation_accuracy(sample.labels, labels),
                    seconds,
                    n_objects,
                )
            )
    return results
