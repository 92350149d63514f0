"""Time apgbench's mSA against elf's (the paper's implementation) on the same label pairs.

Usage: ``python scripts/bench_metrics.py [--data DIR] [--repeat N]``

Pairs: every ``*_label.tif`` under the shared data folder (``APGBENCH_SHARED_DATA`` or
``<repo>/../shared/data``) against variants of itself (shifted, eroded, relabelled with
large ids, merged, split, random, empty), plus synthetic 512x512 and 1024x1024 disk
images. Both implementations run in this process on the same arrays; the script
checks that mSA and all per-threshold accuracies are equal and prints per-pair times
(best of N) and the speed ratio elf / apgbench. Needs ``pip install python-elf``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from apgbench.metrics import score_image, segmentation_accuracy


def shared_data_dir() -> Path:
    env = os.environ.get("APGBENCH_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"


def disks(shape, n, seed):
    """Label image with `n` random non-overlapping-ish disks (later ones paint over)."""
    rng = np.random.default_rng(seed)
    rows, cols = np.indices(shape)
    labels = np.zeros(shape, dtype=np.uint32)
    for i in range(1, n + 1):
        r = rng.uniform(4, 14)
        cr, cc = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        sl = (slice(max(int(cr - r), 0), int(cr + r) + 1), slice(max(int(cc - r), 0), int(cc + r) + 1))
        mask = (rows[sl] - cr) ** 2 + (cols[sl] - cc) ** 2 <= r * r
        labels[sl][mask] = i
    return labels


def variants(y, seed=0):
    rng = np.random.default_rng(seed)
    yield "roll3", np.roll(y, 3, axis=0)
    edge = ndi.grey_erosion(y, size=3) != ndi.grey_dilation(y, size=3)
    yield "eroded", np.where(edge, 0, y)
    ids = np.unique(y)
    ids = ids[ids > 0]
    lut = np.zeros(int(y.max()) + 1, dtype=np.uint64)
    lut[ids] = rng.choice(2**62, ids.size, replace=False) + 1
    yield "relabel-u64", lut[np.roll(y, 1, axis=1)]
    merge = np.arange(int(y.max()) + 1)
    merge[2::2] = merge[1:-1:2][: merge[2::2].size]
    yield "merged", merge[y]
    lower = np.indices(y.shape)[0] > y.shape[0] // 2
    yield "split", (y.astype(np.int64) * 2 + (lower & (y > 0))).astype(np.int32)
    yield "random", rng.integers(0, 64, y.shape, dtype=np.uint16)
    yield "empty", np.zeros_like(y)


def best_of(fn, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=shared_data_dir())
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    try:
        from elf.evaluation import mean_segmentation_accuracy as elf_msa
    except ImportError:
        sys.exit("elf is not installed: pip install python-elf")
    import tifffile

    pairs = []
    for path in sorted(args.data.glob("*/*/*_label.tif")):
        y = tifffile.imread(path)
        pairs += [(f"{path.stem.removesuffix('_label')}/{name}", y, p) for name, p in variants(y)]
    for size, n in ((512, 150), (1024, 600)):
        y = disks((size, size), n, seed=size)
        pairs.append((f"disks{size}/roll2", y, np.roll(y, 2, axis=1)))
        pairs.append((f"disks{size}/other", y, disks((size, size), n, seed=size + 1)))
    if not pairs:
        sys.exit(f"no label pairs found under {args.data}")

    header = (
        f"{'pair':34s} {'shape':>11s} {'n_true':>6s} {'n_pred':>6s} {'mSA':>7s} "
        f"{'elf ms':>8s} {'ours ms':>8s} {'ratio':>6s}"
    )
    print(header)
    print("-" * len(header))
    t_elf = t_ours = 0.0
    ratios, mismatches = [], 0
    for name, true, pred in pairs:
        te, (e_msa, e_acc) = best_of(
            lambda t=true, p=pred: elf_msa(p, t, return_accuracies=True), args.repeat
        )
        to, ours = best_of(lambda t=true, p=pred: score_image(t, p), args.repeat)
        same = e_msa == ours["msa"] and np.array_equal(
            np.asarray(e_acc, dtype=float), segmentation_accuracy(true, pred)
        )
        mismatches += not same
        t_elf, t_ours = t_elf + te, t_ours + to
        ratios.append(te / to)
        shape = "x".join(map(str, true.shape))
        print(
            f"{name:34s} {shape:>11s} {ours['n_true']:6d} {ours['n_pred']:6d} {ours['msa']:7.4f} "
            f"{te * 1e3:8.2f} {to * 1e3:8.2f} {te / to:6.1f}{'' if same else '  MISMATCH'}"
        )
    print("-" * len(header))
    gmean = float(np.exp(np.mean(np.log(ratios))))
    print(
        f"{len(pairs)} pairs, best of {args.repeat}: elf {t_elf * 1e3:.1f} ms, ours {t_ours * 1e3:.1f} ms; "
        f"total ratio {t_elf / t_ours:.1f}x, geometric mean {gmean:.1f}x, min {min(ratios):.1f}x, "
        f"max {max(ratios):.1f}x; mismatches: {mismatches}"
    )
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
