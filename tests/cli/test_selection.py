"""What the command line checks before any work: selections, parameters, devices, methods (issue 12)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest
from typer.testing import CliRunner

from apgbench.cli import app
from apgbench.datasets import Sample, load_dataset, write_prepared
from apgbench.methods import Segmenter

runner = CliRunner()


@pytest.fixture(autouse=True)
def _test_methods(register_methods):
    register_methods(AlwaysExits, NeedsMissing)


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


class AlwaysExits(Segmenter):
    """Calls ``sys.exit`` on every image (test only)."""

    name = "test-always-exits"

    def _segment(self, image):
        sys.exit("bye")


class NeedsMissing(Segmenter):
    """Needs two libraries that do not exist (test only)."""

    name = "test-needs-missing"
    requires = ("apgbench_missing_a", "apgbench_missing_b")
    extra = "sam"

    def _segment(self, image):
        raise AssertionError("never runs")


@pytest.fixture
def dsb_prepared(roots):
    """``dsb`` prepared from three synthetic nuclei images; the other nuclei-fluo datasets are not."""
    samples = [Sample(s.image_id, s.image, s.labels) for s in list(load_dataset("synthetic-nuclei"))[:3]]
    write_prepared(roots[1] / "dsb" / "prepared.h5", "dsb", samples)
    return roots


# -- item 12: selections ---------------------------------------------------------------------------------
def test_domain_selection_runs_prepared_and_lists_the_rest(dsb_prepared):
    results, _ = dsb_prepared
    result = invoke("run", "-d", "nuclei-fluo", "-m", "classic", "--limit", "1")
    assert result.exit_code == 0, result.output
    assert "classic on dsb: mSA" in result.output
    assert "apgbench datasets download arvidsson" in result.output and "not prepared" in result.output
    assert [p.name for p in (results / "classic").iterdir()] == ["dsb"]


def test_group_with_nothing_prepared_and_empty_selection_are_usage_errors(roots):
    result = invoke("run", "-d", "nuclei-histo", "-m", "classic")
    assert result.exit_code == 2 and "None of the" in result.output and "datasets download" in result.output
    for flags in (["-d", "", "-m", "classic"], ["-d", " , ", "-m", "classic"], ["-d", "builtin", "-m", ""]):
        result = invoke("run", *flags)
        assert result.exit_code == 2 and "selects no" in result.output, result.output
    assert not roots[0].exists()


def test_named_unprepared_dataset_is_an_error(roots):
    result = invoke("run", "-d", "synthetic-nuclei,arvidsson", "-m", "classic")
    assert result.exit_code == 1 and "`apgbench datasets download arvidsson`" in result.output
    assert not roots[0].exists()  # nothing ran, not even the prepared dataset


def test_status_all_shows_not_prepared(dsb_prepared):
    result = invoke("status", "-d", "all", "-m", "classic")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any("arvidsson" in line and "not prepared" in line for line in lines)
    assert any("dsb" in line and "missing" in line for line in lines)
    assert invoke("status", "-d", "", "-m", "classic").exit_code == 2


# -- item 5: parameters ----------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["abc", "nan", "1e400", "[1, 2]"])
def test_bad_param_exits_2_before_any_record(roots, value):
    result = invoke("run", "-d", "synthetic-nuclei", "-m", "classic", "-p", f"h={value}")
    assert result.exit_code == 2
    assert "Parameter 'h' of 'classic' expects a finite number" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not roots[0].exists()


def test_run_where_every_image_failed_exits_1(roots):
    result = invoke("run", "-d", "synthetic-nuclei", "-m", "test-always-exits", "--limit", "2")
    assert result.exit_code == 1
    assert "every image of test-always-exits on synthetic-nuclei failed" in result.output
    assert "SystemExit: bye" in result.output


# -- item 13: summary, tag, version, flags, device, report checks ------------------------------------------
def test_run_summary_tag_and_report_label(roots, tmp_path):
    result = invoke(
        "run",
        "-d",
        "synthetic-nuclei,synthetic-cells",
        "-m",
        "classic",
        "--limit",
        "2",
        "-p",
        "h=3",
        "--tag",
        "lowthresh",
        "--no-force",
        "--no-fail-fast",
    )
    assert result.exit_code == 0, result.output
    summary = result.output[result.output.index("run summary") :]
    rows = [line for line in summary.splitlines() if "classic[lowthresh]" in line]
    assert len(rows) == 2 and all("│ 2 " in row for row in rows)  # scored column
    assert "Next: `apgbench report`" in result.output
    result = invoke("report", "--out", str(tmp_path / "r"), "--format", "csv")
    assert result.exit_code == 0, result.output
    assert list(pd.read_csv(tmp_path / "r" / "msa_table.csv", index_col=[0, 1]).columns) == [
        "classic[lowthresh]"
    ]
    result = invoke(
        "report", "--out", str(tmp_path / "r"), "--method", "classic[lowthresh]", "--format", "csv"
    )
    assert result.exit_code == 0, result.output


def test_report_filters_suggest_and_missing_root_is_refused(roots, tmp_path):
    result = invoke("report", "--out", str(tmp_path / "r"))
    assert result.exit_code == 1 and "does not exist" in result.output
    assert invoke("run", "-d", "synthetic-nuclei", "-m", "classic", "--limit", "1").exit_code == 0
    for flag, typo, right in (
        ("--domain", "nuclei-flou", "nuclei-fluo"),
        ("--dataset", "synthetic-nucleus", "synthetic-nuclei"),
        ("--method", "clasic", "classic"),
    ):
        result = invoke("report", "--out", str(tmp_path / "r"), flag, typo)
        assert result.exit_code == 2 and f"Did you mean '{right}'" in result.output, result.output
    assert not (tmp_path / "r").exists()


def test_version():
    from apgbench import __version__

    result = invoke("--version")
    assert result.exit_code == 0 and result.output.strip() == f"apgbench {__version__}"


def test_cuda_device_without_cuda_is_an_error(roots):
    torch = pytest.importorskip("torch", reason="torch is not installed: --device cuda fails earlier")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA, so --device cuda is valid here")
    result = invoke("run", "-d", "synthetic-nuclei", "-m", "classic", "--device", "cuda")
    assert result.exit_code == 2 and "CUDA is not available" in result.output
    assert invoke("run", "-d", "synthetic-nuclei", "-m", "classic", "--device", "gpu").exit_code == 2
    assert not roots[0].exists()


def test_piped_output_is_not_wrapped_at_80_columns(roots):
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "from apgbench.cli import main; main()",
            "run",
            "-d",
            "synthetic-nuclei",
            "-m",
            "classic",
            "--limit",
            "1",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=120,
    ).stdout
    line = next(line for line in out.splitlines() if ": mSA " in line)
    assert len(line) > 80 and line.rstrip().endswith(
        str(roots[0] / "classic" / "synthetic-nuclei" / "default")
    )


# -- item 11: install hints -------------------------------------------------------------------------------
def test_install_hints_keep_extras_and_grammar(monkeypatch):
    result = invoke("methods", "list")
    assert result.exit_code == 0
    line = next(line for line in result.output.splitlines() if "test-needs-missing" in line)
    assert (
        "needs apgbench_missing_a and apgbench_missing_b, which are not installed: run pip install "
        '"apgbench[sam]"' in line
    )
    from apgbench import methods

    monkeypatch.setattr(methods, "missing_modules", lambda names: list(names))
    ready, why = methods.method_status(methods.get_method("cellpose3"))
    assert not ready and "scripts/install_cellpose3_env.sh" in why and "apgbench[cellpose3]" not in why


def test_prepare_error_grammar():
    with pytest.raises(
        Exception, match=r"needs apgbench_missing_a and apgbench_missing_b, which are not installed"
    ):
        NeedsMissing().prepare()


# -- item 12: submit checks ------------------------------------------------------------------------------
def test_submit_refuses_unavailable_method_up_front(roots):
    result = invoke("submit", "-d", "synthetic-nuclei", "-m", "classic,test-needs-missing", "-e", "local")
    assert (
        result.exit_code == 1 and "test-needs-missing" in result.output and '"apgbench[sam]"' in result.output
    )
    assert not roots[0].exists()


def test_submit_slurm_without_sbatch_suggests_local(roots):
    if shutil.which("sbatch"):
        pytest.skip("sbatch exists on this machine, so a SLURM submission would be queued")
    result = invoke("submit", "-d", "synthetic-nuclei", "-m", "classic")
    assert result.exit_code == 1 and "--executor local" in result.output
    assert not roots[0].exists()  # no empty .submissions folder


def test_sbatch_errors_name_sbatch(roots):
    result = invoke("submit", "-d", "synthetic-nuclei", "-m", "classic", "-e", "local", "--sbatch", "account")
    assert result.exit_code == 2 and "--sbatch expects key=value" in result.output
    assert not roots[0].exists()


def test_submit_profiles_set_an_image_timeout():
    from apgbench.distributed import load_profile

    for name in ("default", "cpu"):
        assert load_profile(name).image_timeout_s > 0


def test_submit_passes_the_image_timeout_to_workers(roots):
    pytest.importorskip("submitit", reason="submit needs the slurm extra (submitit)")
    result = invoke(
        "submit",
        "-d",
        "synthetic-nuclei",
        "-m",
        "classic",
        "-e",
        "debug",
        "--limit",
        "1",
        "--profile",
        "cpu",
        "--image-timeout",
        "77",
    )
    assert result.exit_code == 0, result.output
    submission = next((roots[0] / ".submissions").glob("*/submission.json"))
    assert json.loads(submission.read_text())["options"]["image_timeout"] == 77


def test_every_boolean_flag_has_a_no_form():
    import typer

    def walk(command, path):  # typer vendors click: duck-type groups and options
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                yield from walk(sub, [*path, name])
        else:
            yield path, command

    commands = list(walk(typer.main.get_command(app), []))
    assert len(commands) > 10
    flags = [
        (path, param)
        for path, command in commands
        for param in command.params
        if getattr(param, "is_bool_flag", False) and not param.is_eager
    ]
    assert any(param.opts == ["--force"] for _, param in flags)
    lacking = [f"{' '.join(path)} {param.opts[0]}" for path, param in flags if not param.secondary_opts]
    assert not lacking


def test_cuda_index_is_checked_against_the_devices(monkeypatch):
    import typer

    from apgbench.cli.selection import check_device

    torch = pytest.importorskip("torch", reason="the CUDA check asks torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    check_device("cuda")
    check_device("cuda:1")
    with pytest.raises(typer.Exit) as exit_info:
        check_device("cuda:2")
    assert exit_info.value.exit_code == 2


def test_many_pairs_are_summarised_per_method(monkeypatch):
    import importlib
    from pathlib import Path

    from apgbench.runner import RunSummary

    run_cli = importlib.import_module("apgbench.cli.run")  # the package exports the command function as `run`

    printed = []
    monkeypatch.setattr(run_cli.console, "print", lambda table, **_: printed.append(table))
    summaries = [
        RunSummary(f"d{i}", m, Path("."), 2, 2, 0, 0, 0.5, n_scored_total=2)
        for i in range(20)
        for m in ("apg", "ais")
    ]
    run_cli.print_summary(summaries)
    table = printed[0]
    assert table.row_count == 2 and "per method" in table.title
    assert [c._cells for c in table.columns][2] == ["40", "40"]  # images scored per method
