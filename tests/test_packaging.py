"""A plain install works: the wheel ships the configs, and a fresh venv runs the README's main job (issue 12)."""

from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
from setuptools import find_packages

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_package_list_names_every_package():
    assert set(PYPROJECT["packages"]) == set(find_packages(str(REPO / "benchmark"))) | {"apgbench.configs"}
    assert PYPROJECT["package-dir"]["apgbench.configs"] == "configs"


def test_every_config_file_is_package_data():
    patterns = PYPROJECT["package-data"]["apgbench.configs"]
    files = [p.relative_to(REPO / "configs").as_posix() for p in (REPO / "configs").rglob("*") if p.is_file()]
    assert files and all(any(fnmatch.fnmatch(f, pattern) for pattern in patterns) for f in files), files


def _source_copy(target: Path) -> Path:
    """The files git would commit (tracked and new, not ignored), so no stale build/ enters the wheel."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    for name in listed:
        if (REPO / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, target / name)
    return target


def _run(args: list, **kwargs) -> str:
    """Run a command; on failure the assertion shows the end of its output."""
    out = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=900, check=False, **kwargs
    )
    assert out.returncode == 0, f"{args}: {out.stdout[-3000:]}{out.stderr[-3000:]}"
    return out.stdout


@pytest.mark.packaging
@pytest.mark.skipif(
    os.environ.get("APGBENCH_TEST_WHEEL") != "1",
    reason="builds a wheel and installs it with its dependencies from PyPI into a fresh venv "
    "(minutes, needs PyPI): set APGBENCH_TEST_WHEEL=1, as .ci/run does",
)
@pytest.mark.skipif(shutil.which("git") is None, reason="git lists the source files to build from")
def test_wheel_in_fresh_venv_runs_the_main_job(tmp_path):
    source = _source_copy(tmp_path / "src")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp_path / "dist", source])
    wheel = next((tmp_path / "dist").glob("apgbench-*.whl"))
    _run([sys.executable, "-m", "venv", tmp_path / "venv"])  # without --system-site-packages
    bin_dir = tmp_path / "venv" / ("Scripts" if os.name == "nt" else "bin")
    _run([bin_dir / "python", "-m", "pip", "install", "-q", wheel])  # core dependencies from PyPI
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APGBENCH_", "PYTHON"))}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    listed = _run([bin_dir / "apgbench", "datasets", "list"], cwd=work, env=env)
    assert "synthetic-nuclei" in listed and "livecell" in listed
    _run([bin_dir / "apgbench", "run", "--dataset", "builtin", "--method", "classic"], cwd=work, env=env)
    _run([bin_dir / "apgbench", "report"], cwd=work, env=env)
    assert (work / "results" / "report" / "report.html").is_file()
    assert (work / "results" / "report" / "msa_table.csv").is_file()
    code = "from apgbench.distributed import load_profile; print(load_profile('default').gpus)"
    assert _run([bin_dir / "python", "-c", code], cwd=work, env=env).strip() == "1"
