"""Cost of the crash-safe results store against a plain write, in one process.

Usage: ``python scripts/bench_store.py [--images N] [--size PX] [--repeat R] [--dir DIR] [--harness]``

Writes the same N label images (synthetic nuclei, ``size`` x ``size``, uint32) and score rows three ways:

- ``plain``: one HDF5 file and one CSV written at the end (what a script without crash safety does);
- ``crash-safe``: :class:`apgbench.results.RecordWriter` as a run uses it: every image committed on its own
  (compressed part, fsync, rename), then the journaled consolidation into predictions.h5 + scores.csv +
  run.json with checksums;
- ``crash-safe, no fsync``: the same with ``os.fsync`` disabled, to show how much of the cost is the flush.

Prints the best of R times, the per-image overhead and the ratios to ``plain``. ``--dir`` chooses the file
system to measure (default: a temporary folder; use the cluster's results file system for real figures).

``--harness``: the whole per-image harness of ``apgbench run`` instead (read the image from the prepared
dataset, segment, score, commit, progress bar, consolidation), with a method that only labels a threshold:
overhead per image = (wall time of the run - the method's recorded seconds) / N. Best of R runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from apgbench.results import SCORE_COLUMNS, THRESHOLD_COLUMNS, RecordWriter, RunInfo, now


def make_images(n: int, size: int, seed: int = 0) -> list[np.ndarray]:
    """Label images of ~150 touching discs each (as dense as a real nuclei image)."""
    rng = np.random.default_rng(seed)
    rows, cols = np.indices((size, size))
    images = []
    for _ in range(n):
        labels = np.zeros((size, size), np.uint32)
        for label in range(1, 151):
            r, c, radius = rng.uniform(0, size), rng.uniform(0, size), rng.uniform(5, 12)
            labels[(rows - r) ** 2 + (cols - c) ** 2 < radius**2] = label
        images.append(labels)
    return images


def row(image_id: str) -> dict:
    values = dict.fromkeys(THRESHOLD_COLUMNS, 0.5)
    return {
        "dataset": "bench",
        "method": "bench",
        "run_key": "default",
        "image_id": image_id,
        "msa": 0.5,
        **values,
        "n_true": 150,
        "n_pred": 150,
        "seconds": 1.0,
        "peak_mem_mb": 100.0,
        "error": None,
    }


def plain(directory: Path, images: list[np.ndarray]) -> None:
    directory.mkdir(parents=True)
    with h5py.File(directory / "predictions.h5", "w") as f:
        group = f.create_group("labels")
        for i, labels in enumerate(images):
            group.create_dataset(f"img-{i:05d}", data=labels, compression="gzip", compression_opts=4)
    pd.DataFrame([row(f"img-{i:05d}") for i in range(len(images))], columns=SCORE_COLUMNS).to_csv(
        directory / "scores.csv", index=False
    )


def crash_safe(directory: Path, images: list[np.ndarray]) -> None:
    info = RunInfo(
        dataset="bench",
        domain="nuclei-fluo",
        method="bench",
        run_key="default",
        params={},
        apgbench_version="bench",
        started=now(),
        n_images=len(images),
    )
    with RecordWriter(directory) as writer:
        for i, labels in enumerate(images):
            writer.add(f"img-{i:05d}", labels, row(f"img-{i:05d}"))
        writer.finalize(info)


def best_of(repeat: int, base: Path, func, images) -> float:
    times = []
    for k in range(repeat):
        target = base / f"{func.__name__}-{k}"
        start = time.perf_counter()
        func(target, images)
        times.append(time.perf_counter() - start)
        shutil.rmtree(target)
    return min(times)


def harness(base: Path, images: list[np.ndarray], repeat: int) -> tuple[float, float]:
    """Best (wall s/image, overhead s/image) of ``repeat`` ``run_benchmark`` calls on a folder of ``images``."""
    import tifffile
    from scipy import ndimage

    from apgbench.datasets import load_dataset
    from apgbench.datasets.folder import register_folder
    from apgbench.methods import Segmenter, register_method
    from apgbench.results import read_scores
    from apgbench.runner import run_benchmark

    @register_method
    class Threshold(Segmenter):
        name = "bench-threshold"

        def _segment(self, image):
            return ndimage.label(image > 100)[0]

    folder = base / "harness_images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i, labels in enumerate(images):
        image = ((labels > 0) * 150 + rng.integers(0, 60, labels.shape)).astype(np.uint8)
        tifffile.imwrite(folder / f"img{i:05d}.tif", image)
        tifffile.imwrite(folder / f"img{i:05d}_label.tif", labels.astype(np.uint16))
    os.environ["APGBENCH_DATA_DIR"] = str(base / "data")
    dataset = register_folder(folder, domain="nuclei-fluo").id
    load_dataset(dataset)  # prepared once, before the timing
    best = (float("inf"), float("inf"))
    for k in range(repeat):
        start = time.perf_counter()
        summary = run_benchmark(
            dataset, "bench-threshold", results_root=base / f"results{k}", show_progress=True
        )
        wall = time.perf_counter() - start
        method = float(read_scores(summary.directory)["seconds"].sum())
        n = summary.n_new
        best = min(best, (wall / n, (wall - method) / n))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--harness", action="store_true", help="the whole per-image harness of a run")
    args = parser.parse_args()
    images = make_images(args.images, args.size)
    if args.harness:
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            per_image, overhead = harness(Path(tmp), images, args.repeat)
        print(
            f"harness, {args.images} images of {args.size}x{args.size} (best of {args.repeat}): "
            f"{1000 * per_image:.1f} ms/image in all, overhead (read, score, commit, progress) "
            f"{1000 * overhead:.1f} ms/image"
        )
        return
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        base = Path(tmp)
        reference = best_of(args.repeat, base, plain, images)
        safe = best_of(args.repeat, base, crash_safe, images)
        fsync = os.fsync
        os.fsync = lambda fd: None  # the same protocol without flushing to disk
        try:
            unsynced = best_of(args.repeat, base, crash_safe, images)
        finally:
            os.fsync = fsync
    n = args.images
    print(
        f"{n} label images of {args.size}x{args.size} (best of {args.repeat}) in {args.dir or 'a temporary folder'}"
    )
    print(f"  plain write            {reference:7.3f} s  ({1000 * reference / n:6.2f} ms/image)")
    for name, value in (("crash-safe", safe), ("crash-safe, no fsync", unsynced)):
        overhead = 1000 * (value - reference) / n
        print(
            f"  {name:22s} {value:7.3f} s  ({1000 * value / n:6.2f} ms/image, +{overhead:.2f} ms/image)"
            f"  ratio {value / reference:.2f}x"
        )


if __name__ == "__main__":
    main()
