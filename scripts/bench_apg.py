"""Time our APG against micro-sam's AutomaticPromptGenerator on the same inputs, in one process.

Inputs: one real image with its labels (default: the 512x512 DSB2018 sample in ../shared/data), decoder maps
computed from the labels (:func:`apgbench.apg.testing.decoder_maps_from_labels`), SAM ViT-B with random
seeded weights (no checkpoint needed; mask logits scaled so that the ranking scores are not all tied), the same image embeddings and therefore the same prompts. Each APG is
split into prompt derivation, mask decoding, and NMS + painting; the outputs are compared with mSA.

Usage::

    python scripts/bench_apg.py [--image IMG --labels LABELS] [--repeats 1] [--threads N]
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


def run_reference(predictor, maps):
    """micro-sam's AutomaticPromptGenerator.generate, step by step (same calls, timed separately)."""
    from micro_sam import util
    from micro_sam.inference import batched_inference
    from micro_sam.instance_segmentation import _derive_point_prompts

    t0 = time.perf_counter()
    prompts = _derive_point_prompts(*maps)
    t1 = time.perf_counter()
    predictions = batched_inference(
        predictor,
        image=None,
        batch_size=32,
        return_instance_segmentation=False,
        multimasking=False,
        **prompts,
    )
    t2 = time.perf_counter()
    labels = util.apply_nms(predictions, min_size=25, nms_thresh=0.9)
    t3 = time.perf_counter()
    return labels, {
        "prompts": t1 - t0,
        "decode": t2 - t1,
        "nms_paint": t3 - t2,
        "n_prompts": len(prompts["points"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    shared = Path(os.environ.get("APGBENCH_SHARED_DATA", REPO.parent / "shared" / "data"))
    parser.add_argument("--image", type=Path, default=None)
    parser.add_argument("--labels", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    image_path = args.image or next((shared / DEFAULT).parent.glob(Path(DEFAULT).name + ".*"))
    label_path = args.labels or (shared / (DEFAULT + "_label.tif"))

    warnings.filterwarnings("ignore")
    import torch
    from micro_sam import util
    from segment_anything import SamPredictor, sam_model_registry

    from apgbench.apg import automatic_prompt_generation
    from apgbench.apg.testing import decoder_maps_from_labels
    from apgbench.methods.musam import SamPointModel

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
    embeddings = util.precompute_image_embeddings(predictor, image, ndim=2, verbose=False)
    util.set_precomputed(predictor, embeddings)
    print(
        f"image {image_path.name} {image.shape}, {labels.max()} objects, torch threads "
        f"{torch.get_num_threads()}, embedding {time.perf_counter() - t:.1f} s"
    )

    rows = {"micro-sam": [], "ours": []}
    for _ in range(args.repeats):
        ref, times = run_reference(predictor, maps)
        rows["micro-sam"].append(times)
        ours_times: dict = {}
        ours = automatic_prompt_generation(
            *maps, SamPointModel(predictor, embeddings, labels.shape), timings=ours_times
        )
        rows["ours"].append(ours_times)

    def best(name, key):
        return min(r[key] for r in rows[name])

    print(
        f"\nprompts: micro-sam {rows['micro-sam'][0]['n_prompts']}, ours {rows['ours'][0]['n_prompts']}; "
        f"objects: micro-sam {ref.max()}, ours {ours.max()}; mSA(ours vs micro-sam) {_msa(ours, ref):.4f}, "
        f"mSA(micro-sam vs ours) {_msa(ref, ours):.4f}\n"
    )
    print("| step | micro-sam (s) | ours (s) | speed-up |")
    print("|---|---:|---:|---:|")
    total = {"micro-sam": 0.0, "ours": 0.0}
    for key, title in (
        ("prompts", "prompt derivation"),
        ("decode", "mask decoding"),
        ("nms_paint", "NMS + painting"),
    ):
        a, b = best("micro-sam", key), best("ours", key)
        total["micro-sam"] += a
        total["ours"] += b
        print(f"| {title} | {a:.3f} | {b:.3f} | {a / b:.1f}x |")
    print(
        f"| **APG total** | {total['micro-sam']:.2f} | {total['ours']:.2f} | "
        f"{total['micro-sam'] / total['ours']:.2f}x |"
    )
    share = 100 * best("ours", "nms_paint") / best("ours", "decode")
    print(f"\nours: NMS+painting = {share:.2f}% of decoding")


if __name__ == "__main__":
    main()
