"""The allocator tuning of runs (:mod:`apgbench.malloc`) on and off: µSAM apg on a real image, random ViT-B.

glibc's malloc settings cannot be undone inside a process, so each measurement is a child process: the
shared stage (image encoder + decoder maps) and ``apg``'s own stage (prompts answered by SAM's mask decoder;
label-derived decoder maps as in ``bench_family.py``) on one image, with ``APGBENCH_TUNE_MALLOC=1`` or ``0``.
The two settings alternate ``--repeats`` times (best kept); the children report CPU time (user + system) and
wall time of the work only (model building excluded) and a hash of the outputs.

Usage::

    python scripts/bench_malloc.py [--repeats R] [--image PATH]

Last line: ``allocator tuning: <cpu ratio>x CPU, <wall ratio>x wall, outputs identical``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
sys.path.insert(0, str(SCRIPTS))
from bench_family import QUICK, REPO  # noqa: E402 - the scripts folder is on the path now

CHILD = """
import hashlib, json, os, resource, sys, time, warnings
warnings.filterwarnings("ignore")
sys.path.insert(0, {scripts!r})
import numpy as np, tifffile
from apgbench.malloc import tune_malloc
tuned = tune_malloc() is not None
from bench_family import random_model
from micro_sam import instance_segmentation
from apgbench.apg.testing import decoder_maps_from_labels
from apgbench.methods import get_method
predictor, decoder = random_model()
instance_segmentation.get_predictor_and_decoder = lambda *a, **k: (predictor, decoder)
image, labels = tifffile.imread({image!r}), tifffile.imread({labels!r})
apg = get_method("apg")(checkpoint={checkpoint!r})
apg.prepare("cpu", "nuclei-fluo")
usage, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
stage = apg.shared_stage(image)
out = apg.segment_shared(image, stage._replace(maps=decoder_maps_from_labels(labels)))
after, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - wall
digest = hashlib.sha1(np.ascontiguousarray(stage.embeddings["features"]).tobytes() + out.tobytes())
print(json.dumps({{"tuned": tuned, "wall": wall, "user": after.ru_utime - usage.ru_utime,
                  "sys": after.ru_stime - usage.ru_stime, "hash": digest.hexdigest()}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--image", type=Path, default=None, help="an image with a _label.tif beside it")
    args = parser.parse_args()
    shared = Path(os.environ.get("APGBENCH_SHARED_DATA", REPO.parent / "shared" / "data"))
    image = args.image or shared / QUICK[0]
    labels = image.with_name(image.stem + "_label.tif")
    if not image.is_file() or not labels.is_file():
        sys.exit(f"{image} or its _label.tif is missing; set APGBENCH_SHARED_DATA or pass --image.")
    checkpoint = Path(os.environ.get("TMPDIR", "/tmp")) / "apgbench-bench-malloc-random.pt"
    checkpoint.write_text("placeholder: the model is built in memory with random weights\n")
    code = CHILD.format(
        scripts=str(SCRIPTS), image=str(image), labels=str(labels), checkpoint=str(checkpoint)
    )
    best: dict[str, dict] = {}
    for _ in range(args.repeats):
        for setting in ("0", "1"):
            env = {**os.environ, "APGBENCH_TUNE_MALLOC": setting, "PYTHONWARNINGS": "ignore"}
            done = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
            )
            result = json.loads(done.stdout.strip().splitlines()[-1])
            print(
                f"tuning {'on ' if result['tuned'] else 'off'}: wall {result['wall']:.1f} s, user "
                f"{result['user']:.1f} s, system {result['sys']:.1f} s",
                flush=True,
            )
            if setting not in best or result["wall"] < best[setting]["wall"]:
                best[setting] = result
    off, on = best["0"], best["1"]
    if off["tuned"] or not on["tuned"]:
        sys.exit("the tuning did not apply here (not glibc?): nothing to compare")
    cpu = (off["user"] + off["sys"]) / (on["user"] + on["sys"])
    verdict = "outputs identical" if off["hash"] == on["hash"] else "OUTPUTS DIFFER"
    print(f"allocator tuning: {cpu:.2f}x CPU, {off['wall'] / on['wall']:.2f}x wall, {verdict}")
    if off["hash"] != on["hash"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
