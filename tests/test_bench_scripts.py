"""The benchmark scripts fail with a usage message, not a traceback, when their inputs are missing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _bench_apg(*args: str, shared: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "APGBENCH_SHARED_DATA": str(shared)}
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / "bench_apg.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_bench_apg_without_samples_says_what_to_pass(tmp_path):
    result = _bench_apg(shared=tmp_path / "nowhere")
    assert result.returncode == 2 and "StopIteration" not in result.stderr
    assert "--image IMG --labels LABELS" in result.stderr and "APGBENCH_SHARED_DATA" in result.stderr


def test_bench_apg_checks_given_paths(tmp_path):
    result = _bench_apg("--image", str(tmp_path / "a.tif"), shared=tmp_path)
    assert result.returncode == 2 and "together" in result.stderr
    result = _bench_apg(
        "--image", str(tmp_path / "a.tif"), "--labels", str(tmp_path / "b.tif"), shared=tmp_path
    )
    assert result.returncode == 2 and "a.tif does not exist" in result.stderr
