"""The command line end to end on the built-in data: run -> report, errors, evaluate, import cost."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import tifffile
from typer.testing import CliRunner

from apgbench.cli import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_run_all_builtin_then_report(roots, tmp_path):
    _results, _ = roots
    result = invoke("run", "--dataset", "builtin", "--method", "classic", "--limit", "2")
    assert result.exit_code == 0, result.output
    assert result.output.count(": mSA ") == 4 and "run summary" in result.output
    out = tmp_path / "report"
    result = invoke("report", "--out", str(out))
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "msa_table.csv", index_col=[0, 1])
    assert list(table.columns) == ["classic"] and len(table) == 4
    assert table["classic"].between(0, 1).all()
    markdown = (out / "msa_table.md").read_text()
    assert "Nuclei (histopathology)" in markdown and "synthetic-cells" in markdown and "¹" in markdown
    summary = pd.read_csv(out / "summary.csv")
    assert (summary["n_images"] == 2).all()


def test_unknown_ids_suggest_closest(roots):
    result = runner.invoke(app, ["run", "--dataset", "synthetic-nucleus", "--method", "classic"])
    assert result.exit_code == 1
    assert "Unknown dataset 'synthetic-nucleus'" in result.output and "synthetic-nuclei" in result.output
    result = runner.invoke(app, ["run", "--dataset", "synthetic-nuclei", "--method", "clasic"])
    assert result.exit_code == 1 and "'classic'" in result.output


def test_bad_param_is_one_line_error(roots):
    result = runner.invoke(app, ["run", "-d", "synthetic-nuclei", "-m", "classic", "--param", "nonsense"])
    assert result.exit_code == 1 and "key=value" in result.output


def test_report_on_empty_root_says_so(roots, tmp_path):
    roots[0].mkdir()
    result = invoke("report", "--out", str(tmp_path / "r"))
    assert result.exit_code == 0 and "No results found" in result.output


def test_lists(roots):
    result = invoke("methods", "list")
    assert result.exit_code == 0 and "classic" in result.output and "ready" in result.output
    result = invoke("datasets", "list")
    assert result.exit_code == 0 and "synthetic" in result.output
    result = invoke("validate")
    assert result.exit_code == 0 and "dataset configs" in result.output


def test_help_does_not_import_torch():
    code = (
        "import sys; from typer.testing import CliRunner; from apgbench.cli import app; "
        "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output; "
        "r = CliRunner().invoke(app, ['methods', 'list']); assert r.exit_code == 0, r.output; "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_evaluate_external_predictions(roots, tmp_path):
    from apgbench.datasets import load_dataset

    predictions = tmp_path / "preds"
    predictions.mkdir()
    samples = list(load_dataset("synthetic-cells"))
    tifffile.imwrite(predictions / f"{samples[0].image_id}.tif", samples[0].labels)  # perfect
    np.save(predictions / f"{samples[1].image_id}_masks.npy", np.zeros_like(samples[1].labels))  # empty
    result = invoke(
        "evaluate", "--dataset", "synthetic-cells", "--predictions", str(predictions), "--name", "my-tool"
    )
    assert result.exit_code == 0, result.output
    scores = pd.read_csv(roots[0] / "my-tool" / "synthetic-cells" / "default" / "scores.csv").set_index(
        "image_id"
    )
    assert scores.loc[samples[0].image_id, "msa"] == 1.0
    assert scores.loc[samples[1].image_id, "msa"] == 0.0
    assert scores["error"].notna().sum() == len(samples) - 2  # the rest have no file: visible as failures


def test_smoke_reports_every_domain():
    result = invoke("smoke", "classic")
    assert result.exit_code == 0, result.output
    for domain in ("nuclei-fluo", "cells-fluo", "cells-labelfree", "nuclei-histo"):
        assert domain in result.output
