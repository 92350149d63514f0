"""Family run vs separate runs of the four µSAM methods (ais, apg, apg-bd, apg-ref) on real images.

The four methods share one model stage (image encoder + decoder maps). ``apgbench run`` computes it once per
image for all of them (:mod:`apgbench.family`); this script runs the same selection twice through the real
runner and results store, once as four separate runs (``run_many(..., family=False)``) and once as a family,
checks that every method's stored predictions and scores are identical, and prints the speed-up.

Model: SAM ViT-B + micro-sam's UNETR decoder with seeded random weights, built once in memory and handed to
every method (model loading is not timed: both passes would load the same weights). Mask logits are scaled
as in ``bench_apg.py`` so that ranking scores do not tie. Random decoder maps hover around 0.5 and would
make tens of thousands of prompts, so after the real encoder and decoder have run (and been paid for), the
maps are replaced by maps derived from the image's labels (:func:`apgbench.apg.testing.decoder_maps_from_labels`),
the same in both passes: prompt counts as with a trained model.

Timing: process CPU time of each pass (steady on a shared machine; torch's threads are counted), and the
wall time. The last line is ``family speed-up: <ratio>x, outputs identical`` (ratio of CPU times).

Usage::

    python scripts/bench_family.py [--quick] [--threads N]

``--quick``: one 512x512 image (DSB2018). Default: that image and the two 520x696 BBBC039 images.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
METHODS = ["ais", "apg", "apg-bd", "apg-ref"]
QUICK = ["nuclei-fluo/dsb2018/stardist_data_img2d.tif"]
FULL = [*QUICK, "nuclei-fluo/bbbc039/IXMtest_A02_s1.tif", "nuclei-fluo/bbbc039/IXMtest_B22_s8.tif"]


def random_model(seed: int = 0):
    """A (SamPredictor, UNETR decoder) pair with seeded random weights, logits scaled (see module notes)."""
    import torch
    from micro_sam.instance_segmentation import get_decoder
    from segment_anything import SamPredictor, sam_model_registry

    torch.manual_seed(seed)
    predictor = SamPredictor(sam_model_registry["vit_b"]().eval())
    with torch.no_grad():
        layer = predictor.model.mask_decoder.output_hypernetworks_mlps[0].layers[-1]
        layer.weight.mul_(100)
        layer.bias.mul_(100)
    from micro_sam.instance_segmentation import get_unetr

    unetr = get_unetr(predictor.model.image_encoder, None, device="cpu")
    state = {k: v for k, v in unetr.state_dict().items() if not k.startswith("encoder")}
    decoder = get_decoder(predictor.model.image_encoder, state, device="cpu")
    return predictor, decoder


def make_folder(shared: Path, files: list[str], folder: Path) -> dict[str, np.ndarray]:
    """A folder dataset of the images (copied with their labels); returns labels by image content hash."""
    import tifffile

    folder.mkdir(parents=True)
    by_hash = {}
    for name in files:
        image_path = shared / name
        label_path = image_path.with_name(image_path.stem + "_label.tif")
        if not image_path.is_file() or not label_path.is_file():
            sys.exit(
                f"{image_path} or its _label.tif is missing; set APGBENCH_SHARED_DATA to the samples folder."
            )
        shutil.copy(image_path, folder / image_path.name)
        shutil.copy(label_path, folder / label_path.name)
        image = tifffile.imread(image_path)
        by_hash[hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()] = tifffile.imread(label_path)
    return by_hash


def patch(predictor, decoder, labels_by_hash):
    """Every µSAM method gets the in-memory model; decoder maps are swapped for label-derived ones."""
    from micro_sam import instance_segmentation

    from apgbench.apg.testing import decoder_maps_from_labels
    from apgbench.methods import musam

    instance_segmentation.get_predictor_and_decoder = lambda *a, **k: (predictor, decoder)
    original = musam._MicroSam._maps
    oracle = {}

    def maps(self, image):
        embeddings, _, tiling = original(self, image)  # the real encoder and decoder run (and are timed)
        key = hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()
        if key not in oracle:
            oracle[key] = decoder_maps_from_labels(labels_by_hash[key])
        return embeddings, oracle[key], tiling

    musam._MicroSam._maps = maps


def run_pass(dataset: str, results: Path, data_root: Path, family: bool, checkpoint: Path):
    from apgbench.runner import run_many

    cpu, wall = time.process_time(), time.perf_counter()
    summaries = list(
        run_many(
            [dataset],
            METHODS,
            family=family,
            params={"checkpoint": str(checkpoint)},
            results_root=results,
            data_root=data_root,
            show_progress=False,
        )
    )
    return summaries, time.process_time() - cpu, time.perf_counter() - wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one 512x512 image")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    shared = Path(os.environ.get("APGBENCH_SHARED_DATA", REPO.parent / "shared" / "data"))
    warnings.filterwarnings("ignore")
    import torch

    from apgbench.datasets.folder import register_folder
    from apgbench.results import read_prediction, read_scores

    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="bench_family_"))
    try:
        labels_by_hash = make_folder(shared, QUICK if args.quick else FULL, work / "bench_images")
        os.environ["APGBENCH_DATA_DIR"] = str(work / "data")
        dataset = register_folder(work / "bench_images", domain="nuclei-fluo").id
        checkpoint = work / "random-vit-b.pt"
        checkpoint.write_text("placeholder: the model is built in memory with random weights\n")
        patch(*random_model(), labels_by_hash)
        print(
            f"{len(labels_by_hash)} image(s), methods {', '.join(METHODS)}, torch threads {torch.get_num_threads()}",
            flush=True,
        )
        separate, cpu_sep, wall_sep = run_pass(dataset, work / "separate", work / "data", False, checkpoint)
        print(f"separate runs: CPU {cpu_sep:.1f} s, wall {wall_sep:.1f} s", flush=True)
        family, cpu_fam, wall_fam = run_pass(dataset, work / "family", work / "data", True, checkpoint)
        print(f"family run: CPU {cpu_fam:.1f} s, wall {wall_fam:.1f} s", flush=True)
        identical = True
        print("| method | separate s/image | family s/image (incl. shared) | objects | mSA vs labels |")
        print("|---|---:|---:|---:|---:|")
        for a, b in zip(separate, family):
            sa, sb = read_scores(a.directory), read_scores(b.directory)
            cols = [c for c in sa.columns if c not in ("seconds", "peak_mem_mb")]
            same = sa[cols].equals(sb[cols]) and all(
                np.array_equal(read_prediction(a.directory, i), read_prediction(b.directory, i))
                for i in sa["image_id"]
            )
            identical &= same and sa["error"].isna().all()
            print(
                f"| {a.method} | {sa['seconds'].mean():.2f} | {sb['seconds'].mean():.2f} | "
                f"{sa['n_pred'].mean():.0f} | {sa['msa'].mean():.3f} |"
            )
        print(
            f"\nseparate: CPU {cpu_sep:.1f} s, wall {wall_sep:.1f} s; family: CPU {cpu_fam:.1f} s, "
            f"wall {wall_fam:.1f} s (wall speed-up {wall_sep / wall_fam:.2f}x)"
        )
        if not identical:
            print(f"family speed-up: {cpu_sep / cpu_fam:.2f}x, OUTPUTS DIFFER")
            sys.exit(1)
        print(f"family speed-up: {cpu_sep / cpu_fam:.2f}x, outputs identical")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
