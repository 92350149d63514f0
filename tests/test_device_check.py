"""``scripts/device_check.sh --device cpu --quick``: the GPU check's own script, exercised on a CPU."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from apgbench.datasets import list_datasets

REPO = Path(__file__).resolve().parent.parent
ROW = re.compile(
    r"^\| (?P<method>[a-z0-9-]+) \| (?P<n>\d+) \| (?P<s>[0-9.]+) \| (?P<peak>-|\d+) \| (?P<obj>\d+) \|$"
)


def _check(*args: str, timeout: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(REPO / "scripts" / "device_check.sh"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "PYTHON": sys.executable},
    )


def _rows(stdout: str) -> dict[str, float]:
    return {m["method"]: float(m["s"]) for m in map(ROW.match, stdout.splitlines()) if m}


def _study_images(assume: int = 100) -> int:
    return sum(c.n_images or assume for c in list_datasets() if not c.builtin and not c.volumetric)


def _assert_projection(stdout: str, rows: dict[str, float]) -> None:
    (line,) = [x for x in stdout.splitlines() if x.startswith("projection: ")]
    hours = float(re.match(r"projection: ([0-9.]+) GPU-hours", line)[1])
    images = _study_images()
    assert f"({images} images:" in line and f"x {len(rows)} methods" in line
    # the table rounds seconds to 3 decimals: the projection agrees within that rounding
    assert hours == pytest.approx(
        images * sum(rows.values()) / 3600, abs=images * len(rows) * 5e-4 / 3600 + 0.01
    )


def test_quick_cpu_check_classic_only():
    result = _check("--device", "cpu", "--quick", "--methods", "classic", timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = _rows(result.stdout)
    assert list(rows) == ["classic"]
    assert "| method | images | s/image | peak GPU MB | objects |" in result.stdout
    _assert_projection(result.stdout, rows)
    assert "device check done" in result.stdout.splitlines()[-1] and "0 failed" in result.stdout


def test_cuda_without_gpu_or_bad_wheels_folder_is_one_sentence(tmp_path):
    result = _check("--wheels", str(tmp_path / "none"), timeout=60)
    assert result.returncode == 2 and "is not a folder" in result.stderr
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: --device cuda would run the full check")
    result = _check("--device", "cuda", timeout=120)
    assert result.returncode == 1 and "sees no CUDA GPU" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.heavy
def test_quick_cpu_check_runs_every_cheap_method():
    """The CI form of the GPU check: every cheap method present runs (random weights), the rest say why."""
    result = _check("--device", "cpu", "--quick", timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = _rows(result.stdout)
    assert "classic" in rows and {"instanseg", "stardist"} & set(rows)  # installed in the dev environment
    skipped = [x for x in result.stdout.splitlines() if re.match(r"^\| [a-z0-9-]+ \| skipped: ", x)]
    assert any(x.startswith("| apg |") and "cheap methods" in x for x in skipped)
    assert "family saving: skipped" in result.stdout
    _assert_projection(result.stdout, rows)


def test_wheels_folder_installs_offline_and_reports_what_it_cannot(tmp_path):
    """An empty wheel folder: satisfied extras install nothing, cellsam (not installed here) is reported."""
    (tmp_path / "wheels").mkdir()
    result = _check(
        "--wheels",
        str(tmp_path / "wheels"),
        "--device",
        "cpu",
        "--quick",
        "--methods",
        "classic",
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    import importlib.util

    if importlib.util.find_spec("cellSAM") is None:  # cellSAM comes from git, so no wheel in an empty folder
        assert "wheels: extra 'cellsam' not installable" in result.stdout
    assert list(_rows(result.stdout)) == ["classic"]


@pytest.mark.heavy
def test_cpu_check_of_apg_measures_bf16_against_fp32():
    """apg (random ViT-B) on one small image, then its bf16 run against fp32: seconds and agreement."""
    pytest.importorskip("micro_sam", reason="needs the musam extra")
    result = _check(*"--device cpu --methods apg --size 128 --images 1 --budget 150".split(), timeout=470)
    assert result.returncode == 0, result.stderr[-2000:]
    assert list(_rows(result.stdout)) == ["apg"]
    (line,) = [x for x in result.stdout.splitlines() if x.startswith("precision (apg, random weights): ")]
    match = re.search(
        r"fp32 [0-9.]+ s/image; bf16 [0-9.]+ s/image \([0-9.]+x\), mSA vs fp32 ([0-9.]+) over 1", line
    )
    assert match and 0 <= float(match[1]) <= 1, line
    assert "fp16" not in line  # fp16 is measured on CUDA only
