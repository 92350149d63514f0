"""The allocator tuning of runs (apgbench.malloc): applied on glibc unless switched off, recorded in run.json,
and without effect on what a model computes."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from apgbench.runner import run_benchmark

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
needs_glibc = pytest.mark.skipif(
    not GLIBC, reason="the tuning is glibc's mallopt; other libcs are left as they are"
)


def _python(code: str, **env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=600,
        check=True,
    )
    return result.stdout.strip().splitlines()[-1]


@needs_glibc
def test_applied_once_and_switched_off_by_the_environment():
    code = "from apgbench.malloc import tune_malloc as t, malloc_setting as s; print(t(), t() == s())"
    assert _python(code) == "glibc mallopt: M_MMAP_MAX=0, M_TRIM_THRESHOLD=1073741824 True"
    assert _python(code, APGBENCH_TUNE_MALLOC="0") == "None True"


@needs_glibc
def test_a_run_records_the_tuning(roots):
    results, _ = roots
    summary = run_benchmark("synthetic-nuclei", "classic", results_root=results, show_progress=False)
    info = json.loads((summary.directory / "run.json").read_text())
    assert info["hardware"]["malloc"].startswith("glibc mallopt: M_MMAP_MAX=0")


# SAM's image encoder and mask decoder on a real crop, through apgbench's µSAM wrapper: features and labels hashed.
_MODEL = """
import hashlib, sys, numpy as np, torch, tifffile
from apgbench.malloc import tune_malloc
tuned = tune_malloc() is not None
from micro_sam import instance_segmentation
from micro_sam.instance_segmentation import DecoderAdapter, get_unetr
from segment_anything import SamPredictor
from segment_anything.build_sam import _build_sam
from apgbench.methods import get_method
from apgbench.apg.testing import decoder_maps_from_labels
torch.manual_seed(0)
sam = _build_sam(encoder_embed_dim=64, encoder_depth=2, encoder_num_heads=2, encoder_global_attn_indexes=[1],
                 checkpoint=None).eval()
with torch.no_grad():
    layer = sam.mask_decoder.output_hypernetworks_mlps[0].layers[-1]; layer.weight.mul_(100); layer.bias.mul_(100)
pair = (SamPredictor(sam), DecoderAdapter(get_unetr(sam.image_encoder, None, device="cpu")))
instance_segmentation.get_predictor_and_decoder = lambda *a, **k: pair
image = tifffile.imread(sys.argv[1])[:256, :256]
labels = tifffile.imread(sys.argv[2])[:256, :256]
apg = get_method("apg")(checkpoint=sys.argv[3])
apg.prepare("cpu", "nuclei-fluo")
stage = apg.shared_stage(image)
out = apg.segment_shared(image, stage._replace(maps=decoder_maps_from_labels(labels)))
digest = hashlib.sha1(np.ascontiguousarray(stage.embeddings["features"]).tobytes())
for m in stage.maps: digest.update(np.ascontiguousarray(m).tobytes())
digest.update(out.tobytes())
print(int(out.max()), digest.hexdigest(), tuned)
"""


@needs_glibc
@pytest.mark.heavy
def test_model_outputs_are_bit_identical_with_and_without(tmp_path):
    pytest.importorskip("micro_sam", reason="needs the musam extra")
    from .conftest import shared_data_dir

    root = shared_data_dir()
    if root is None:
        pytest.skip("the real samples folder ../shared/data is absent (set APGBENCH_SHARED_DATA to use it)")
    image = root / "nuclei-fluo" / "dsb2018" / "stardist_data_img2d.tif"
    checkpoint = tmp_path / "tiny.pt"
    checkpoint.write_text("built in memory")
    script = tmp_path / "model.py"
    script.write_text(_MODEL)
    args = [str(image), str(image.with_name(image.stem + "_label.tif")), str(checkpoint)]
    code = f"import sys; sys.argv = [''] + {args!r}; exec(open({str(script)!r}).read())"
    tuned, plain = _python(code).split(), _python(code, APGBENCH_TUNE_MALLOC="0").split()
    assert tuned[2] == "True" and plain[2] == "False"
    assert tuned[:2] == plain[:2] and int(tuned[0]) > 0
