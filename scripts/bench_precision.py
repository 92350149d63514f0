"""fp32 against bf16 (``--param precision=bf16``) for the µSAM methods: agreement and speed on real images.

Model: SAM ViT-B + micro-sam's UNETR decoder with seeded random weights, logits scaled, as in
``bench_family.py``. For each image and each precision the script times the shared stage (image encoder +
decoder maps, :meth:`~apgbench.methods.musam._MicroSam.shared_stage`) and each method's own stage, then
scores the bf16 labels against the fp32 labels with mSA (1.0: identical instances):

- ``ais``: the decoder maps of the random decoder, in each precision (noise-like maps: a harsh test);
- ``apg`` and ``apg-ref``: the prompts come from maps derived from the image's labels (the same in both
  precisions, so prompt counts are realistic); the masks come from SAM's mask decoder on the embeddings of
  each precision.

Agreement with random weights is a pessimistic figure (random features have no margin); the speed ratio
holds for trained weights (same architecture, same operations). The allocator tuning of ``apgbench run``
(:mod:`apgbench.malloc`) is applied, as in a run. fp16 is offered for GPUs; on CPUs without fp16 matrix
units it is much slower than fp32 and is only timed with ``--fp16``.

Usage::

    python scripts/bench_precision.py [--quick] [--fp16] [--threads N]

``--quick``: one 512x512 image (DSB2018). Default: that image and the two 520x696 BBBC039 images. The last
line is ``bf16 vs fp32: agreement mSA <min over methods>, speed-up <ratio>x`` (ratio of summed CPU times).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_family import FULL, QUICK, REPO, random_model

METHODS = ["ais", "apg", "apg-ref"]


def timed(fn, *args):
    """``fn(*args)`` and its process CPU time (torch's threads counted)."""
    start = time.process_time()
    result = fn(*args)
    return result, time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one 512x512 image")
    parser.add_argument("--fp16", action="store_true", help="time fp16 too (slow on most CPUs)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    shared_dir = Path(os.environ.get("APGBENCH_SHARED_DATA", REPO.parent / "shared" / "data"))
    files = QUICK if args.quick else FULL
    missing = [f for f in files if not (shared_dir / f).is_file()]
    if missing:
        sys.exit(f"{shared_dir / missing[0]} is missing; set APGBENCH_SHARED_DATA to the samples folder.")
    warnings.filterwarnings("ignore")
    import tifffile
    import torch
    from micro_sam import instance_segmentation

    from apgbench.apg.testing import decoder_maps_from_labels
    from apgbench.malloc import tune_malloc
    from apgbench.methods import get_method
    from apgbench.metrics import mean_segmentation_accuracy

    tune_malloc()
    if args.threads:
        torch.set_num_threads(args.threads)
    predictor, decoder = random_model()
    instance_segmentation.get_predictor_and_decoder = lambda *a, **k: (predictor, decoder)
    checkpoint = Path(os.environ.get("TMPDIR", "/tmp")) / "apgbench-bench-precision-random.pt"
    checkpoint.write_text("placeholder: the model is built in memory with random weights\n")
    precisions = ["fp32", "bf16", *(["fp16"] if args.fp16 else [])]
    print(
        f"{len(files)} image(s), torch threads {torch.get_num_threads()}, precisions {', '.join(precisions)}"
    )
    seconds = {(p, stage): 0.0 for p in precisions for stage in ("shared", *METHODS)}
    labels_out: dict = {}
    feature_error = []
    for name in files:
        image = tifffile.imread(shared_dir / name)
        truth = tifffile.imread((shared_dir / name).with_name(Path(name).stem + "_label.tif"))
        oracle = decoder_maps_from_labels(truth)
        features = {}
        for precision in precisions:
            segmenters = {m: get_method(m)(checkpoint=str(checkpoint), precision=precision) for m in METHODS}
            owner = segmenters["ais"]
            owner.prepare("cpu", "nuclei-fluo")
            for segmenter in segmenters.values():
                if segmenter is not owner:
                    segmenter.share_model(owner)
            stage, t = timed(owner.shared_stage, image)
            seconds[(precision, "shared")] += t
            features[precision] = np.asarray(stage.embeddings["features"], dtype=np.float64)
            for method, segmenter in segmenters.items():
                used = stage if method == "ais" else stage._replace(maps=oracle)
                labels_out[(name, precision, method)], t = timed(segmenter.segment_shared, image, used)
                seconds[(precision, method)] += t
        reference = features["fp32"]
        for precision in precisions[1:]:
            error = np.linalg.norm(features[precision] - reference) / np.linalg.norm(reference)
            feature_error.append((precision, error))
    n = len(files)
    print("\n| precision | encoder+maps s/image | " + " | ".join(f"{m} own s/image" for m in METHODS) + " |")
    print("|---|---:|" + "---:|" * len(METHODS))
    for precision in precisions:
        cells = " | ".join(f"{seconds[(precision, m)] / n:.2f}" for m in METHODS)
        print(f"| {precision} | {seconds[(precision, 'shared')] / n:.2f} | {cells} |")
    print("\n| precision | " + " | ".join(f"{m} mSA vs fp32" for m in METHODS) + " | feature rel. error |")
    print("|---|" + "---:|" * (len(METHODS) + 1))
    agreement = {}
    for precision in precisions[1:]:
        cells = []
        for method in METHODS:
            scores = [
                mean_segmentation_accuracy(
                    labels_out[(f, "fp32", method)], labels_out[(f, precision, method)]
                )
                for f in files
            ]
            agreement[(precision, method)] = float(np.mean(scores))
            cells.append(f"{agreement[(precision, method)]:.3f}")
        errors = [e for p, e in feature_error if p == precision]
        print(f"| {precision} | {' | '.join(cells)} | {np.mean(errors):.2e} |")
    total = {p: sum(seconds[(p, s)] for s in ("shared", *METHODS)) for p in precisions}
    worst = min(agreement[("bf16", m)] for m in METHODS)
    print(
        f"\nbf16 vs fp32: agreement mSA {worst:.3f} (worst method), "
        f"speed-up {total['fp32'] / total['bf16']:.2f}x"
    )


if __name__ == "__main__":
    main()
