"""The test suite itself: every skip says why, also when the real samples are absent (issue 12)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_no_empty_parameter_sets_without_shared_data(tmp_path):
    env = {**os.environ, "APGBENCH_SHARED_DATA": str(tmp_path / "absent")}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            str(REPO / "tests"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "NOTSET" not in out.stdout, [line for line in out.stdout.splitlines() if "NOTSET" in line]


def test_test_methods_leave_the_global_registry():
    """Test-only methods are registered per test (the ``register_methods`` fixture), never for good.

    Importing every test module must leave ``available_methods()`` as a user sees it: run in a fresh
    interpreter after collecting the whole suite.
    """
    code = (
        "import pytest, sys\n"
        "from apgbench.methods import available_methods\n"
        "code = pytest.main(['--collect-only', '-q', '-p', 'no:cacheprovider', sys.argv[1]])\n"
        "leaked = sorted(name for name in available_methods() if name.startswith('test-'))\n"
        "print('LEAKED', leaked)\n"
        "sys.exit(code or bool(leaked))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(REPO / "tests")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0 and "LEAKED []" in out.stdout, out.stdout[-2000:] + out.stderr[-2000:]
