"""apgbench's own errors are one sentence on the CLI; anything else is a bug and shows a traceback (issue 13, 5)."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest
import tomllib
from typer.testing import CliRunner

import apgbench.results as results_module
from apgbench.cli import app
from apgbench.errors import ApgbenchError, InvalidInputError, NotFoundError, UnavailableError, UnknownIdError

from .conftest import REPO

runner = CliRunner()


def test_user_errors_derive_from_apgbench_error_and_their_old_types():
    from apgbench.datasets import DatasetNotPreparedError
    from apgbench.datasets.download import DownloadError
    from apgbench.datasets.readers import ReaderError
    from apgbench.methods import MethodUnavailableError, ParameterError
    from apgbench.results import RecordMismatchError, StoreWriteError

    for cls, old in [
        (ParameterError, ValueError),
        (MethodUnavailableError, RuntimeError),
        (ReaderError, ValueError),
        (DownloadError, RuntimeError),
        (StoreWriteError, RuntimeError),
        (RecordMismatchError, ValueError),
        (DatasetNotPreparedError, FileNotFoundError),
        (UnknownIdError, KeyError),
        (NotFoundError, FileNotFoundError),
        (UnavailableError, RuntimeError),
        (InvalidInputError, ValueError),
    ]:
        assert issubclass(cls, ApgbenchError) and issubclass(cls, old), cls
    assert str(UnknownIdError("Unknown method 'x'.")) == "Unknown method 'x'."  # no KeyError quotes


def test_unknown_ids_of_every_registry_say_did_you_mean():
    from apgbench.datasets import get_dataset_config
    from apgbench.datasets.readers import get_reader
    from apgbench.methods import get_method

    for get, typo, right in [
        (get_method, "clasic", "classic"),
        (get_reader, "imagefolder", "image-folder"),
        (get_dataset_config, "synthetic-nuclie", "synthetic-nuclei"),
    ]:
        with pytest.raises(UnknownIdError, match=f"Did you mean '{right}'"):
            get(typo)


def test_a_bug_shows_its_traceback_not_one_sentence(roots, monkeypatch):
    import apgbench.runner

    def broken(*args, **kwargs):
        raise KeyError("internal_table_entry")  # a bug, not bad input

    monkeypatch.setattr(apgbench.runner, "run_many", broken)
    result = runner.invoke(app, ["run", "-d", "synthetic-nuclei", "-m", "classic"])
    assert result.exit_code == 1 and isinstance(result.exception, KeyError)  # not typer.Exit: it propagated
    assert "Error:" not in result.output


def test_debug_shows_the_traceback_of_apgbench_errors_too(roots):
    plain = runner.invoke(app, ["run", "-d", "synthetic-nuclei", "-m", "clasic"])
    assert (
        plain.exit_code == 1
        and "Did you mean 'classic'" in plain.output
        and isinstance(plain.exception, SystemExit)
    )
    debug = runner.invoke(app, ["--debug", "run", "-d", "synthetic-nuclei", "-m", "clasic"])
    assert isinstance(debug.exception, UnknownIdError)


def test_results_exports_each_name_once():
    assert len(results_module.__all__) == len(set(results_module.__all__))


def test_every_core_dependency_is_used():
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    imports = {"scikit-image": "skimage", "pyyaml": "yaml"}
    source = "\n".join(p.read_text() for p in (REPO / "benchmark" / "apgbench").rglob("*.py"))
    for dep in deps:
        name = dep.split(">")[0].split("=")[0].split("<")[0].strip()
        module = imports.get(name, name)
        assert f"import {module}" in source or f"from {module}" in source, (
            f"{name} is declared but never imported"
        )


def test_tp50_is_stored_and_old_records_stay_readable(roots, tmp_path):
    from apgbench.results import SCORE_COLUMNS, read_scores
    from apgbench.runner import run_benchmark

    summary = run_benchmark(
        "synthetic-nuclei", "classic", results_root=roots[0], limit=2, show_progress=False
    )
    scores = read_scores(summary.directory)
    assert scores["tp50"].notna().all() and (scores["tp50"] <= scores["n_true"]).all()
    old = tmp_path / "old"
    old.mkdir()
    scores.drop(columns=["tp50"]).to_csv(old / "scores.csv", index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = read_scores(old)
    assert list(again.columns) == SCORE_COLUMNS and again["tp50"].isna().all()
    pd.testing.assert_series_equal(again["msa"], scores["msa"])
