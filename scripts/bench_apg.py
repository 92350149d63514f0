"""Time our APG against micro-sam's AutomaticPromptGenerator on the same inputs, in one process.

Inputs: one real image with its labels (default: the 512x512 DSB2018 sample in ../shared/data), decoder
maps computed from the labels (:func:`apgbench.apg.testing.decoder_maps_from_labels`), SAM ViT-B with
random seeded weights (no checkpoint needed; mask logits scaled so that the ranking scores are not all
tied), the same image embedding and therefore the same prompts. Each APG is split into prompt derivation,
mask decoding, and NMS + painting, timed by wall clock and by process CPU time (minimum over repeats,
the two implementations alternating); the outputs are compared with mSA.

Usage::

    python scripts/bench_apg.py [--image IMG --labels LABELS] [--repeats 2] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DEFAULT = "nuclei-fluo/dsb2018/stardist_data_img2d"


def _read(path: Path) -> np.ndarray:
    import imageio.v3 as iio
    import tifffile

    return tifffile.imread(path) if path.suffix in (".tif", ".tiff") else iio.imread(path)


def _msa(a: np.ndarray, b: np.ndarray) -> float:
    from apgbench.metrics import mean_segmentation_accuracy

    return float(mean_segmentation_accuracy(a, b))


class Clock:
    """Wall and process-CPU seconds per (implementation, step); the minimum over repeats is reported.

    CPU time is the steadier figure on a shared machine (other processes slow the wall clock)."""

    def __init__(self) -> None:
        self.runs: dict = {}

    def __call__(self, name: str, step: str, fn, *args, **kwargs):
        w, c = time.perf_counter(), time.process_time()
        result = fn(*args, **kwargs)
        times = (time.perf_counter() - w, time.process_time() - c)
        best = self.runs.setdefault((name, step), times)
        self.runs[(name, step)] = (min(best[0], times[0]), min(best[1], times[1]))
        return result


def run_reference(clock, predictor, maps):
    """micro-sam's AutomaticPromptGenerator.generate, step by step (its own calls, timed separately)."""
    from micro_sam import util
    from micro_sam.inference import batched_inference
    from micro_sam.instance_segmentation import _derive_point_prompts

    prompts = clock("micro-sam", "prompts", _derive_point_prompts, *maps)
    predictions = clock(
        "micro-sam",
        "decode",
        batched_inference,
        predictor,
        image=None,
        batch_size=32,
        return_instance_segmentation=False,
        multimasking=False,
        **prompts,
    )
    labels = clock("micro-sam", "nms_paint", util.apply_nms, predictions, min_size=25, nms_thresh=0.9)
    return labels, len(prompts["points"])


def run_ours(clock, model, maps):
    """apgbench.apg.automatic_prompt_generation, step by step (the same three calls it makes)."""
    from apgbench.apg import PromptMasks, derive_prompts, prompt_masks_to_labels

    # micro-sam 1.8 labels 4-connected components: compare like with like (connectivity=1).
    points = clock("ours", "prompts", derive_prompts, *maps, connectivity=1)

    def decode():
        parts = [model.predict_points(points[i : i + 32]) for i in range(0, len(points), 32)]
        return PromptMasks.concatenate(parts, maps[0].shape)

    masks = clock("ours", "decode", decode)
    return clock("ours", "nms_paint", prompt_masks_to_labels, masks, connectivity=1), len(points)


def _inputs(parser: argparse.ArgumentParser, args: argparse.Namespace, shared: Path) -> tuple[Path, Path]:
    """The image and label paths: both given, or the default sample; a usage error says what to pass."""
    if (args.image is None) != (args.labels is None):
        parser.error("pass --image and --labels together (the labels of that image)")
    if args.image is None:
        found = sorted((shared / DEFAULT).parent.glob(Path(DEFAULT).name + ".*"))
        label_path = shared / (DEFAULT + "_label.tif")
        if not found or not label_path.is_file():
            parser.error(
                f"the default sample {shared / DEFAULT}.* with its _label.tif is missing; pass "
                "--image IMG --labels LABELS, or set APGBENCH_SHARED_DATA to the samples folder"
            )
        return found[0], label_path
    for path in (args.image, args.labels):
        if not path.is_file():
            parser.error(f"{path} does not exist")
    return args.image, args.labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    shared = Path(os.environ.get("APGBENCH_SHARED_DATA", REPO.parent / "shared" / "data"))
    parser.add_argument("--image", type=Path, default=None)
    parser.add_argument("--labels", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    image_path, label_path = _inputs(parser, args, shared)

    warnings.filterwarnings("ignore")
    import torch
    from micro_sam import util
    from segment_anything import SamPredictor, sam_model_registry

    from apgbench.apg import automatic_prompt_generation
    from apgbench.apg.testing import decoder_maps_from_labels
    from apgbench.methods.images import to_rgb_uint8
    from apgbench.methods.musam import SamPointModel, paper_input

    if args.threads:
        torch.set_num_threads(args.threads)
    image, labels = _read(image_path), _read(label_path)
    maps = decoder_maps_from_labels(labels)
    torch.manual_seed(0)
    predictor = SamPredictor(sam_model_registry["vit_b"]().eval())
    # Random-weight logits stay within +-1: all stability scores would be 0 and the NMS order a tie-break.
    # Scaling the last hypernetwork layer scales the logits: same masks, distinct ranking scores.
    with torch.no_grad():
        layer = predictor.model.mask_decoder.output_hypernetworks_mlps[0].layers[-1]
        layer.weight.mul_(100)
        layer.bias.mul_(100)
    t = time.perf_counter()
    with paper_input():  # the image as the paper's code gave it to the encoder
        embeddings = util.precompute_image_embeddings(predictor, to_rgb_uint8(image), ndim=2, verbose=False)
    util.set_precomputed(predictor, embeddings)
    print(
        f"image {image_path.name} {image.shape}, {labels.max()} objects, torch threads "
        f"{torch.get_num_threads()}, embedding {time.perf_counter() - t:.1f} s"
    )

    clock = Clock()
    model = SamPointModel(predictor, embeddings, labels.shape)
    for _ in range(args.repeats):
        ref, n_ref = run_reference(clock, predictor, maps)
        ours, n_ours = run_ours(clock, model, maps)
    check = automatic_prompt_generation(*maps, model, connectivity=1)  # the entry point gives the same result
    print(
        f"\nprompts: micro-sam {n_ref}, ours {n_ours}; objects: micro-sam {ref.max()}, ours {ours.max()}; "
        f"mSA(ours vs micro-sam) {_msa(ref, ours):.4f}, mSA(micro-sam vs ours) {_msa(ours, ref):.4f}; "
        f"entry point identical: {np.array_equal(check, ours)}\n"
    )
    print(
        "| step | micro-sam wall (s) | ours wall (s) | speed-up | micro-sam CPU (s) | ours CPU (s) | speed-up |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    total = np.zeros((2, 2))
    for key, title in (
        ("prompts", "prompt derivation"),
        ("decode", "mask decoding"),
        ("nms_paint", "NMS + painting"),
    ):
        ref_t, our_t = np.array(clock.runs[("micro-sam", key)]), np.array(clock.runs[("ours", key)])
        total += [ref_t, our_t]
        print(
            f"| {title} | {ref_t[0]:.3f} | {our_t[0]:.3f} | {ref_t[0] / our_t[0]:.1f}x "
            f"| {ref_t[1]:.3f} | {our_t[1]:.3f} | {ref_t[1] / our_t[1]:.1f}x |"
        )
    print(
        f"| **APG total** | {total[0, 0]:.2f} | {total[1, 0]:.2f} | {total[0, 0] / total[1, 0]:.2f}x "
        f"| {total[0, 1]:.2f} | {total[1, 1]:.2f} | {total[0, 1] / total[1, 1]:.2f}x |"
    )
    nms, dec = clock.runs[("ours", "nms_paint")], clock.runs[("ours", "decode")]
    print(
        f"\nours: NMS+painting = {100 * nms[0] / dec[0]:.2f}% (wall), {100 * nms[1] / dec[1]:.2f}% (CPU) of decoding"
    )


if __name__ == "__main__":
    main()
