"""Every dataset YAML validates, the 36 ids match the paper's reference table, reader options are accepted."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from apgbench.config import config_dir
from apgbench.datasets import DatasetConfig, list_datasets
from apgbench.datasets.readers import ReaderError, get_reader
from apgbench.datasets.registry import load_dataset_config

from ..conftest import REPO

REFERENCE = REPO.parent / "shared" / "reference" / "paper_msa.csv"
YAMLS = sorted((config_dir() / "datasets").glob("*.yaml"))
BENCHMARK = [
    c for c in list_datasets() if not c.builtin and not c.volumetric
]  # the 36 (3D sets: test_volumes.py)
SEEDED = {"yeaz", "lynsec", "tnbc", "cryonuseg", "puma"}


@pytest.mark.parametrize("path", YAMLS, ids=[p.stem for p in YAMLS])
def test_config_validates(path: Path):
    config = load_dataset_config(path)
    assert config.id == path.stem


def test_36_benchmark_datasets_match_the_reference():
    if not REFERENCE.exists():
        pytest.skip("../shared/reference/paper_msa.csv is absent")
    with open(REFERENCE, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    reference = {(r["dataset_id"].replace("_", "-"), r["domain"]) for r in rows}
    assert len(reference) == 36
    assert {(c.id, c.domain) for c in BENCHMARK} == reference
    assert {c.paper_id for c in BENCHMARK} == {r["dataset_id"] for r in rows}


@pytest.mark.parametrize("config", BENCHMARK, ids=[c.id for c in BENCHMARK])
def test_config_is_complete(config: DatasetConfig, tmp_path):
    assert config.citation and config.licence and config.split.description
    if config.manual:
        assert config.source.instructions and "http" in config.source.instructions
    else:
        assert all(f.url.startswith(("http://", "https://")) for f in config.source.files)
    if config.id in SEEDED:
        assert config.split.rule == "seeded-random" and not config.split.deterministic_in_paper
        assert "differ from the paper" in config.split.description
    else:
        assert config.split.deterministic_in_paper and config.split.rule != "seeded-random"
    # The reader accepts the options: on an empty folder it reports missing data, not a bad option.
    with pytest.raises(ReaderError):
        get_reader(config.format.reader)(tmp_path, **config.format.options)


def test_unknown_keys_and_bad_values_are_rejected():
    data = yaml.safe_load(YAMLS[0].read_text())
    with pytest.raises(ValidationError, match="extra"):
        DatasetConfig.model_validate({**data, "unexpected": 1})
    bad_split = {**data, "split": {"description": "x", "rule": "seeded-random", "options": {"fraction": 0.2}}}
    with pytest.raises(ValidationError, match="seed"):
        DatasetConfig.model_validate(bad_split)
    with pytest.raises(ValidationError, match="kebab"):
        DatasetConfig.model_validate({**data, "id": "Bad_Id"})
