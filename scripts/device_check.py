"""Device check: every method whose library is here, random weights, built-in images, seconds and memory.

Called by ``scripts/device_check.sh`` (which installs missing wheels first). For each registered method it
builds the real network with seeded random weights (no download: the machine may have no internet), segments
built-in synthetic images (tiled to ``--size``), checks each output (uint32, the image's ``(H, W)``, object
count below the pixel count), and prints one table row: seconds per image, peak GPU memory
(``torch.cuda.max_memory_allocated``), objects. Then the shared-stage saving of a µSAM family run (ais, apg,
apg-bd, apg-ref through ``run_many`` as four separate runs vs one family), ``apg`` at ``precision`` bf16 (and
fp16 on CUDA) against fp32 (seconds, mSA of the outputs against fp32's) and a projection of GPU-hours for
the full study: per dataset config its test-set image count (``n_images`` where the config has one, else
``--assume-images``, said so) x seconds per image per method.

Random weights: the µSAM methods get a seeded SAM ViT-B + UNETR decoder, and their decoder maps are replaced
(after the real encoder and decoder have run and been timed) by maps derived from the image's labels, as in
``bench_family.py``: random maps would make tens of thousands of prompts, a trained model does not. SAM3's
model is built with ``checkpoint_path=None``. Outputs of random networks are not scored.

Usage::

    python scripts/device_check.py [--device cuda] [--quick] [--size N] [--images N] [--budget S] [--methods A,B]
"""

from __future__ import annotations

import argparse
import hashlib
import signal
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

SCRIPTS = Path(__file__).resolve().parent
MUSAM = ("ais", "apg", "apg-bd", "apg-ref")
# --quick on a CPU: methods whose random network segments a 128x128 image in seconds on 2 cores.
CHEAP = ("classic", "instanseg", "stardist")
# Budgets (s) of the methods whose random model takes long to build (ViT-L/ViT-H scale), without --budget.
SLOW_BUILD = {"sam3": 90, "cellpose-sam": 60, "cellsam": 60}
BUILTINS = ("synthetic-nuclei", "synthetic-cells", "synthetic-histo", "synthetic-labelfree")


class OverBudget(BaseException):
    """A method ran past its time budget (a BaseException: no library's ``except Exception`` swallows it)."""


def tiled(sample, size: int):
    """The sample's image and labels tiled (labels offset per tile) or cropped to ``size`` x ``size``."""
    image, labels = sample.image, sample.labels.astype(np.uint32)
    reps = -(-size // min(labels.shape))
    if reps > 1:
        shift = int(labels.max()) + 1
        rows = [
            np.concatenate([np.where(labels > 0, labels + shift * (r * reps + c), 0) for c in range(reps)], 1)
            for r in range(reps)
        ]
        labels = np.concatenate(rows, 0)
        image = np.tile(image, (reps, reps) + (1,) * (image.ndim - 2))
    return np.ascontiguousarray(image[:size, :size]), labels[:size, :size]


def images(size: int, count: int):
    """``count`` built-in images (domain, image, labels), cycling over the 2D synthetic datasets."""
    from apgbench.datasets import get_dataset_config, load_dataset

    out, iters = [], [(get_dataset_config(d), iter(load_dataset(d))) for d in BUILTINS]
    for i in range(count):
        config, it = iters[i % len(iters)]
        out.append((config.domain, *tiled(next(it), size)))
    return out


def key(image: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()


def patch_musam(device: str, labels_by_hash: dict) -> None:
    """µSAM methods get a seeded random ViT-B + decoder on ``device``; decoder maps come from the labels."""
    import torch
    from micro_sam import instance_segmentation
    from micro_sam.instance_segmentation import get_decoder, get_unetr
    from segment_anything import SamPredictor, sam_model_registry

    from apgbench.apg.testing import decoder_maps_from_labels
    from apgbench.methods import musam

    torch.manual_seed(0)
    predictor = SamPredictor(sam_model_registry["vit_b"]().eval().to(device))
    # random mask logits stay within +-1: scale them so scores do not tie (as bench_apg.py does)
    with torch.no_grad():
        layer = predictor.model.mask_decoder.output_hypernetworks_mlps[0].layers[-1]
        layer.weight.mul_(100)
        layer.bias.mul_(100)
    unetr = get_unetr(predictor.model.image_encoder, None, device=device)
    state = {k: v for k, v in unetr.state_dict().items() if not k.startswith("encoder")}
    decoder = get_decoder(predictor.model.image_encoder, state, device=device)
    instance_segmentation.get_predictor_and_decoder = lambda *a, **k: (predictor, decoder)
    original = musam._MicroSam._maps

    def maps(self, image):
        embeddings, _, tiling = original(self, image)  # the real encoder and decoder run (and are timed)
        return embeddings, decoder_maps_from_labels(labels_by_hash[key(image)]), tiling

    musam._MicroSam._maps = maps


def patch_sam3() -> None:
    """SAM3 builds its real architecture without a checkpoint (random weights)."""
    from sam3 import model_builder

    from apgbench.methods.sam3 import Sam3

    build = model_builder.build_sam3_image_model
    model_builder.build_sam3_image_model = lambda **k: build(**{**k, "checkpoint_path": None})
    Sam3._checkpoint = lambda self: Path("random-weights")


def params_for(name: str, placeholder: Path) -> dict:
    """Random-weight parameters of a method (testing-only switches of the wrappers)."""
    from apgbench.methods import get_method

    cls = get_method(name)
    if name in MUSAM:
        return {"checkpoint": str(placeholder)}
    return {"random_weights": True} if "random_weights" in cls.default_params else {}


def check(labels, shape) -> int:
    """The output contract: uint32, the image's (H, W), fewer objects than pixels; returns the object count."""
    if not isinstance(labels, np.ndarray) or labels.dtype != np.uint32 or labels.shape != tuple(shape):
        raise AssertionError(
            f"bad output {getattr(labels, 'dtype', type(labels))} {getattr(labels, 'shape', '')}"
            f" for an image of shape {tuple(shape)}"
        )
    n = int(np.count_nonzero(np.unique(labels)))
    if n > labels.size:
        raise AssertionError(f"{n} objects in {labels.size} pixels")
    return n


def on_alarm(signum, frame):
    raise OverBudget


def run_method(name, params, samples, device, budget, outputs=None):
    """Segment the samples within ``budget`` seconds; returns (images done, s/image, peak MB, objects).

    ``outputs``: a list that receives each image's labels.
    """
    import torch

    from apgbench.methods import get_method

    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(max(1, int(budget)))
    seconds, objects = [], []
    try:
        with get_method(name)(**params) as segmenter:
            for domain, image, _ in samples:
                # the model build is not timed (prepare reloads only when the domain's model changes)
                segmenter.prepare(device=device, domain=domain)
                if cuda:
                    torch.cuda.synchronize()
                start = time.perf_counter()
                labels = segmenter.segment(image)
                if cuda:
                    torch.cuda.synchronize()
                seconds.append(time.perf_counter() - start)
                objects.append(check(labels, image.shape[:2]))
                if outputs is not None:
                    outputs.append(labels)
    except OverBudget:
        if not seconds:
            raise
    finally:
        signal.alarm(0)
    # torch's counter: a TensorFlow method (stardist) allocates outside it, so its peak is not known here
    tf = "tensorflow" in get_method(name).requires
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda and not tf else float("nan")
    # the first image pays for lazy initialisation (cuDNN autotune, JIT): leave it out when there are more
    timed = seconds[1:] if len(seconds) > 1 else seconds
    return len(seconds), float(np.mean(timed)), peak, float(np.mean(objects))


def family_saving(device: str, limit: int, placeholder: Path, work: Path, labels_by_hash: dict) -> str:
    """Seconds of ais+apg+apg-bd+apg-ref as four separate runs vs one family run on synthetic-nuclei."""
    from itertools import islice

    import torch

    from apgbench.datasets import load_dataset
    from apgbench.results import read_prediction, read_scores
    from apgbench.runner import run_many

    for sample in islice(load_dataset("synthetic-nuclei"), limit):  # the label-derived maps need the labels
        labels_by_hash[key(sample.image)] = sample.labels

    result, outputs = {}, {}
    for family in (False, True):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        summaries = list(
            run_many(
                ["synthetic-nuclei"],
                list(MUSAM),
                family=family,
                limit=limit,
                device=device,
                params={"checkpoint": str(placeholder)},
                results_root=work / f"family-{family}",
                data_root=work / "data",
                show_progress=False,
            )
        )
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        result[family] = time.perf_counter() - start
        if len(summaries) != len(MUSAM):
            raise AssertionError(f"{len(summaries)} run summaries for {len(MUSAM)} methods")
        outputs[family] = [
            (read_scores(s.directory)["error"].isna().all(), read_prediction(s.directory, i))
            for s in summaries
            for i in read_scores(s.directory)["image_id"]
        ]
    identical = all(
        ok_a and ok_b and np.array_equal(a, b) for (ok_a, a), (ok_b, b) in zip(outputs[False], outputs[True])
    ) and len(outputs[False]) == len(outputs[True]) == limit * len(MUSAM)
    return (
        f"family saving: separate {result[False]:.1f} s, family {result[True]:.1f} s for {limit} image(s) x "
        f"{len(MUSAM)} methods, speed-up {result[False] / result[True]:.2f}x, "
        + ("outputs identical" if identical else "OUTPUTS DIFFER")
    )


def precision_check(device: str, samples, placeholder: Path, budget: float) -> str:
    """``apg`` at fp32 against bf16 (and fp16 on CUDA): seconds per image and mSA of each against fp32."""
    from apgbench.metrics import mean_segmentation_accuracy

    precisions = ["fp32", "bf16", *(["fp16"] if device.startswith("cuda") else [])]
    outputs: dict[str, list] = {p: [] for p in precisions}
    seconds = {}
    for precision in precisions:
        params = {"checkpoint": str(placeholder), "precision": precision}
        seconds[precision] = run_method("apg", params, samples, device, budget, outputs[precision])[1]
    parts = []
    for precision in precisions[1:]:
        pairs = list(zip(outputs["fp32"], outputs[precision]))
        agreement = np.mean([mean_segmentation_accuracy(a, b) for a, b in pairs])
        parts.append(
            f"{precision} {seconds[precision]:.3f} s/image ({seconds['fp32'] / seconds[precision]:.2f}x), "
            f"mSA vs fp32 {agreement:.3f} over {len(pairs)} image(s)"
        )
    return f"precision (apg, random weights): fp32 {seconds['fp32']:.3f} s/image; " + "; ".join(parts)


def projection(rows: dict, assume: int, device: str) -> None:
    """GPU-hours of the full study: test-set images per dataset x seconds per image per method."""
    from apgbench.datasets import list_datasets

    study = [c for c in list_datasets() if not c.builtin and not c.volumetric]
    known = [c.n_images for c in study if c.n_images]
    total_images = sum(c.n_images or assume for c in study)
    per_method = {m: total_images * s / 3600 for m, (_, s, _, _) in rows.items()}
    for m, hours in per_method.items():
        print(f"  {m}: {hours:.2f} h")
    print(
        f"projection: {sum(per_method.values()):.2f} GPU-hours for {len(study)} 2D datasets x "
        f"{len(per_method)} methods ({total_images} images: {len(known)} datasets with n_images in their config, "
        f"{len(study) - len(known)} assumed at {assume}; "
        f"seconds per image measured on {device} at the check's image size)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument(
        "--quick", action="store_true", help="tiny images, one per method, cheap methods only"
    )
    parser.add_argument("--size", type=int, default=None, help="image side (default 512; --quick 128)")
    parser.add_argument("--images", type=int, default=None, help="images per method (default 4; --quick 1)")
    parser.add_argument(
        "--budget",
        type=float,
        default=None,
        help="seconds per method (default 35 or SLOW_BUILD's; --quick 30)",
    )
    parser.add_argument("--total", type=float, default=420, help="seconds for the whole check (default 420)")
    parser.add_argument(
        "--methods", default=None, help="comma-separated method ids (default: all registered)"
    )
    parser.add_argument(
        "--assume-images",
        type=int,
        default=100,
        help="test-set size assumed for a dataset config without n_images (default 100)",
    )
    args = parser.parse_args()
    size = args.size or (128 if args.quick else 512)
    count = args.images or (1 if args.quick else 4)
    budget = args.budget or (30 if args.quick else 35)
    started = time.perf_counter()
    warnings.filterwarnings("ignore")
    import torch

    from apgbench.methods import available_methods, method_status, missing_modules, missing_text

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit(f"--device {args.device}: torch {torch.__version__} sees no CUDA GPU.")
    gpu = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu"
    print(
        f"device check: {gpu}, torch {torch.__version__}, {count} image(s) of {size}x{size} per method, "
        f"budget {budget:.0f} s per method"
        + ("" if args.budget or args.quick else f" ({', '.join(f'{m} {b}' for m, b in SLOW_BUILD.items())})"),
        flush=True,
    )
    samples = images(size, count)
    labels_by_hash = {key(image): labels for _, image, labels in samples}
    work = Path(tempfile.mkdtemp(prefix="device_check_"))
    placeholder = work / "random-vit-b.pt"
    placeholder.write_text("placeholder: the model is built in memory with random weights\n")
    musam_ready = False
    rows, skipped = {}, {}
    # time kept for the family measurement (4 separate runs + 1 family run of the µSAM methods)
    reserve = 0 if args.quick or args.methods else 100  # + 40 s for the precision measurement
    for name, cls in available_methods().items():
        budget = args.budget or (30 if args.quick else SLOW_BUILD.get(name, 35))
        missing = missing_modules(cls.requires)
        ok, why = method_status(cls)
        left = args.total - (time.perf_counter() - started)
        if args.methods and name not in args.methods.split(","):
            continue
        if missing:
            skipped[name] = f"needs {missing_text(missing)}"
        elif args.quick and not args.device.startswith("cuda") and name not in CHEAP:
            skipped[name] = "--quick on a CPU runs only cheap methods"
        elif not ok and "weights" not in why:  # weights do not matter (random); other reasons do
            skipped[name] = why
        elif left - reserve < budget:
            skipped[name] = (
                f"{left:.0f} s left of the {args.total:.0f} s total ({reserve} s kept for the family "
                f"measurement), under its {budget:.0f} s budget"
            )
        if name in skipped:
            print(f"skip {name}: {skipped[name]}", flush=True)
            continue
        try:
            if name in MUSAM and not musam_ready:
                patch_musam(args.device, labels_by_hash)
                musam_ready = True
            if name == "sam3":
                patch_sam3()
            rows[name] = run_method(name, params_for(name, placeholder), samples, args.device, budget)
            print(f"ran {name}: {rows[name][0]} image(s)", flush=True)
        except OverBudget:
            skipped[name] = f"no image done within its {budget:.0f} s budget"
        except Exception as err:  # every method gets its line
            skipped[name] = (
                f"FAILED {type(err).__name__}: {str(err).splitlines()[0][:160] if str(err) else ''}"
            )
        if name in skipped:
            print(f"skip {name}: {skipped[name]}", flush=True)
    print("\n| method | images | s/image | peak GPU MB | objects |")
    print("|---|---:|---:|---:|---:|")
    for name, (n, s, peak, objects) in rows.items():
        print(f"| {name} | {n} | {s:.3f} | {'-' if np.isnan(peak) else f'{peak:.0f}'} | {objects:.0f} |")
    for name, why in skipped.items():
        print(f"| {name} | skipped: {why} | | | |")
    left = args.total - (time.perf_counter() - started)
    if not all(m in rows for m in MUSAM):
        print("family saving: skipped (the µSAM methods did not all run here)")
    elif left < max(reserve, 30):
        print(f"family saving: skipped ({left:.0f} s left of the {args.total:.0f} s total)")
    else:
        try:
            line = family_saving(args.device, min(count, 2), placeholder, work, labels_by_hash)
            print(line, flush=True)
            if line.endswith("OUTPUTS DIFFER"):
                skipped["family"] = "FAILED: family and separate outputs differ"
        except Exception as err:
            print(f"family saving: FAILED {type(err).__name__}: {err}")
    left = args.total - (time.perf_counter() - started)
    if "apg" not in rows:
        print("precision: skipped (apg did not run here)")
    elif left < 40:
        print(f"precision: skipped ({left:.0f} s left of the {args.total:.0f} s total)")
    else:
        try:
            share = min(budget, (left - 10) / 3)  # three precisions on CUDA, two on a CPU
            print(precision_check(args.device, samples, placeholder, share), flush=True)
        except Exception as err:
            print(f"precision: FAILED {type(err).__name__}: {err}")
    projection(rows, args.assume_images, args.device)
    failed = [m for m, why in skipped.items() if why.startswith("FAILED")]
    print(
        f"device check done in {time.perf_counter() - started:.0f} s: {len(rows)} method(s) ran, "
        f"{len(skipped)} skipped, {len(failed)} failed{': ' + ', '.join(failed) if failed else ''}"
    )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
