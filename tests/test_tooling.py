"""Developer tooling: the version in one place, linters pinned alike in pyproject and pre-commit."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib
import yaml
from typer.testing import CliRunner

import apgbench
from apgbench.cli import app

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def test_version_lives_in_one_place():
    project = PYPROJECT["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "apgbench.__version__"}
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"apgbench {apgbench.__version__}"
    # Every released version has its changelog section; Unreleased comes first.
    changelog = (REPO / "CHANGELOG.md").read_text()
    headings = re.findall(r"^## \[([^\]]+)\]", changelog, flags=re.MULTILINE)
    assert headings[0] == "Unreleased" and apgbench.__version__ in headings


def _pin(name: str) -> str:
    pins = [r for r in PYPROJECT["project"]["optional-dependencies"]["dev"] if re.match(rf"{name}\b", r)]
    assert len(pins) == 1 and "==" in pins[0], f"{name} must be pinned exactly in the dev extra: {pins}"
    return pins[0].split("==")[1]


def test_linters_pinned_and_pre_commit_uses_the_same_ruff():
    config = yaml.safe_load((REPO / ".pre-commit-config.yaml").read_text())
    ruff = next(r for r in config["repos"] if r["repo"].endswith("/ruff-pre-commit"))
    assert ruff["rev"] == f"v{_pin('ruff')}"
    assert {h["id"] for h in ruff["hooks"]} == {"ruff-check", "ruff-format"}
    _pin("mypy")
    ci = (REPO / ".ci" / "run").read_text()
    lint = [ci.index(step) for step in ("ruff check .", "ruff format --check .", "python -m mypy")]
    assert max(lint) < ci.index("python -m pytest")  # the lint step runs before the tests


def test_pytest_is_strict_and_runs_the_package_doctests():
    options = PYPROJECT["tool"]["pytest"]["ini_options"]
    assert options["xfail_strict"] is True
    assert {"--strict-markers", "--strict-config", "--doctest-modules"} <= set(options["addopts"].split())
    assert "benchmark/apgbench" in options["testpaths"]
