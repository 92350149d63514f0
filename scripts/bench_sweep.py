"""A 3x3x2 APG grid: ``apgbench sweep``'s shared work against 18 separate runs, on a real image.

Grid: foreground_threshold 0.4/0.5/0.6 x center_distance_threshold 0.3/0.4/0.5 x nms_threshold 0.8/0.9, method
``apg``, SAM ViT-B + UNETR decoder with seeded random weights (as ``bench_family.py``: logits scaled, the real
encoder and decoder run, then the decoder maps are replaced by label-derived ones so prompt counts are
realistic). No embedding cache in either. The allocator tuning that ``apgbench run`` and ``apgbench sweep``
apply (:mod:`apgbench.malloc`) is on for both.

- sweep: :func:`apgbench.sweep.sweep_image`, one call for the 18 combinations (CPU time measured);
- separate: what 18 ``apgbench run`` calls compute: per combination the shared stage (encoder + decoder maps)
  and the full APG (:meth:`Segmenter.segment`). The shared stage is the same computation in all 18 runs, so by
  default it is timed ``--repeats`` times (minimum kept, default 1) and counted 18 times; ``--full`` really runs
  it 18 times.

Checks that every combination's labels equal the separate run's, then prints
``sweep speed-up: <ratio>x (18 combinations), outputs identical`` as its last line.

Usage::

    python scripts/bench_sweep.py [--full] [--repeats R] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_family import QUICK, REPO, make_folder, patch, random_model

GRID = {
    "foreground_threshold": [0.4, 0.5, 0.6],
    "center_distance_threshold": [0.3, 0.4, 0.5],
    "nms_threshold": [0.8, 0.9],
}


def cpu(fn, *args):
    start = time.process_time()
    result = fn(*args)
    return result, time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--full", action="store_true", help="run the shared stage 18 times for the separate runs"
    )
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=1, help="timings of the shared stage (minimum kept)")
    args = parser.parse_args()
    shared_dir = Path(os.environ.get("APGBENCH_SHARED_DATA", REPO.parent / "shared" / "data"))
    warnings.filterwarnings("ignore")
    import tifffile
    import torch

    from apgbench.malloc import tune_malloc
    from apgbench.methods import get_method
    from apgbench.methods.embedding_cache import use_cache
    from apgbench.sweep import combinations, sweep_image

    tune_malloc()
    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="bench_sweep_"))
    try:
        patch(*random_model(), make_folder(shared_dir, QUICK, work / "images"))
        image = tifffile.imread(shared_dir / QUICK[0])
        checkpoint = work / "random.pt"
        checkpoint.write_text("placeholder: the model is built in memory\n")
        combos = combinations("apg", GRID, {"checkpoint": str(checkpoint)})
        segmenter = get_method("apg")(checkpoint=str(checkpoint))
        segmenter.prepare("cpu", "nuclei-fluo")
        timings: dict = {}
        swept, t_sweep = cpu(sweep_image, segmenter, image, combos, timings)
        print(
            f"sweep: CPU {t_sweep:.1f} s (shared stage {timings['shared']:.1f} s wall, "
            f"{timings['prompt_sets']} prompt sets decoded)",
            flush=True,
        )
        identical, t_own, t_shared = True, 0.0, []
        stage = None
        t_hit = None
        if not args.full:  # the same computation as in each separate run: timed, counted 18 times
            with use_cache(work / "cache"):  # the first call computes and stores (the cost of a cold run)
                for _ in range(args.repeats):
                    shutil.rmtree(work / "cache", ignore_errors=True)  # each timing a miss
                    stage, seconds = cpu(segmenter.shared_stage, image)
                    t_shared.append(seconds)
                hit, t_hit = cpu(segmenter.shared_stage, image)  # a re-run with other parameters: a cache hit
                assert all(np.array_equal(a, b) for a, b in zip(hit.maps, stage.maps))
        for combo, labels in zip(combos, swept):
            method = get_method("apg")(**combo)
            method.share_model(segmenter)  # model loading is not timed in either
            if args.full:
                separate, seconds = cpu(method.segment, image)
                t_shared.append(seconds)
            else:
                separate, seconds = cpu(method.segment_shared, image, stage)
                t_own += seconds
            identical &= bool(np.array_equal(separate, labels))
        t_separate = sum(t_shared) + t_own if args.full else 18 * min(t_shared) + t_own
        if args.full:
            print(f"separate: 18 full runs, CPU {t_separate:.1f} s")
        else:
            print(
                f"separate: shared stage CPU {min(t_shared):.1f} s x 18 + APG stages {t_own:.1f} s = "
                f"{t_separate:.1f} s (shared stage timed {len(t_shared)}x, counted 18 times)"
            )
        if t_hit is not None:
            own = t_own / len(combos)
            print(
                f"embedding cache: a re-run of one combination costs {own + t_hit:.2f} s instead of "
                f"{own + min(t_shared):.1f} s CPU (hit {t_hit:.2f} s): re-run speed-up "
                f"{(own + min(t_shared)) / (own + t_hit):.1f}x"
            )
        verdict = "outputs identical" if identical else "OUTPUTS DIFFER"
        print(f"sweep speed-up: {t_separate / t_sweep:.1f}x (18 combinations), {verdict}")
        if not identical:
            sys.exit(1)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
