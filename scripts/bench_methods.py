"""CPU time per 512x512 image of each foundation-model wrapper, with random weights (no checkpoint needed).

Runs each method's real library code with its production parameters (e.g. AMG's 32x32 point grid) on a
512x512 crop of a real sample image (../shared/data), after one warm-up call, and prints wall time, process
CPU time and the ratio to the weight-free ``classic`` method measured in the same process. Random weights
change what is found, so post-processing time (mask filtering, Cellpose dynamics) differs from a trained
model's; the network cost is the same.

    python scripts/bench_methods.py                          # all methods importable here
    python scripts/bench_methods.py --methods cellpose-sam --params use_bfloat16=false
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

RANDOM = ("amg", "sam2-amg", "cellpose-sam", "cellpose3", "cellsam")


def load_image(size: int) -> np.ndarray:
    """A real 512x512 nuclei image, or a seeded synthetic one when the samples folder is absent."""
    root = Path(
        os.environ.get("APGBENCH_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
    )
    path = root / "nuclei-fluo" / "dsb2018" / "stardist_data_img2d.tif"
    if path.exists():
        import tifffile

        return tifffile.imread(path)[:size, :size]
    print(f"({path} absent: using a synthetic image)")
    return (np.random.default_rng(0).random((size, size)) * 1000).astype(np.uint16)


def timed(method, image: np.ndarray, repeats: int) -> tuple[float, float]:
    """Mean wall and process-CPU seconds of ``method.segment(image)`` after one warm-up call."""
    method.segment(image)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        method.segment(image)
    return (time.perf_counter() - wall) / repeats, (time.process_time() - cpu) / repeats


def parse_value(text: str):
    lowered = text.lower()
    if lowered in {"true", "false"}:
        return lowered == "true"
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--methods", default=",".join(RANDOM))
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--params", nargs="*", default=[], help="key=value overrides for every method")
    args = parser.parse_args()

    from apgbench.methods import MethodUnavailableError, get_method, method_status

    image = load_image(args.size)
    overrides = dict(item.split("=", 1) for item in args.params)
    overrides = {key: parse_value(value) for key, value in overrides.items()}
    with get_method("classic")() as reference:
        reference.prepare("cpu", "nuclei-fluo")
        ref_wall, ref_cpu = timed(reference, image, max(args.repeats, 3))
    import torch

    print(
        f"image {image.shape} {image.dtype}; torch threads {torch.get_num_threads()}; cores {os.cpu_count()}"
    )
    print(f"{'method':14s} {'wall s':>8s} {'cpu s':>8s} {'x classic (wall)':>17s}  notes")
    print(f"{'classic':14s} {ref_wall:8.2f} {ref_cpu:8.2f} {1.0:17.1f}")
    for name in args.methods.split(","):
        cls = get_method(name)
        params = {"random_weights": True} if "random_weights" in cls.default_params else {}
        params.update({k: v for k, v in overrides.items() if k in cls.default_params})
        try:
            with cls(**params) as method:
                method.prepare("cpu", "nuclei-fluo")
                wall, cpu = timed(method, image, args.repeats)
                notes = f"precision {method.info().get('precision')}; {params}"
        except (MethodUnavailableError, ImportError) as err:
            print(f"{name:14s} {'-':>8s} {'-':>8s} {'-':>17s}  skipped: {err}")
            continue
        except Exception:
            print(f"{name:14s} failed; status: {method_status(cls)}")
            raise
        print(f"{name:14s} {wall:8.2f} {cpu:8.2f} {wall / ref_wall:17.1f}  {notes}")


if __name__ == "__main__":
    main()
