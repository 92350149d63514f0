"""Method metadata: every registered method's ``MethodMeta`` is consistent with the package, the † marks
it carries equal the ones the dataset configs carried before, and a plugin gets a full report row."""

from __future__ import annotations

import copy
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

import apgbench.methods as registry
from apgbench.config import DOMAINS
from apgbench.datasets import list_datasets
from apgbench.methods import MethodMeta, Segmenter, available_methods, method_order, trained_on
from apgbench.report.paper import load_paper_msa, paper_value
from apgbench.report.tables import order_methods, trained_marks

REPO = Path(__file__).resolve().parents[2]
METHODS = sorted(available_methods())

# The `trained_on` lists of configs/datasets/*.yaml before they moved into the methods' metadata (main at
# c8d3294; datasets not listed had none). The paper's Fig. 2 marks: the report's † must not change.
YAML_TRAINED_ON = {
    "cellpose": ["cellpose3", "cellpose-sam", "cellsam", "ais", "apg", "apg-bd", "apg-ref"],
    "cryonuseg": ["cellpose-sam", "cellsam"],
    "deepbacs": ["cellpose3", "cellpose-sam", "cellsam", "ais", "apg", "apg-bd", "apg-ref"],
    "dsb": ["cellpose3", "cellpose-sam", "cellsam", "ais", "apg", "apg-bd", "apg-ref"],
    "dynamicnuclearnet": ["ais", "apg", "apg-bd", "apg-ref"],
    "ihc-tma": ["cellpose-sam"],
    "livecell": ["cellpose3", "cellpose-sam", "cellsam", "ais", "apg", "apg-bd", "apg-ref", "sam3"],
    "lynsec": ["cellpose-sam"],
    "monuseg": ["cellpose-sam", "cellsam", "ais", "apg", "apg-bd", "apg-ref"],
    "nuinsseg": ["cellpose-sam", "cellsam"],
    "omnipose": ["cellpose3", "cellpose-sam", "cellsam", "ais", "apg", "apg-bd", "apg-ref"],
    "pannuke": ["cellpose-sam", "cellsam", "ais", "apg", "apg-bd", "apg-ref", "sam3"],
    "plantseg-root": ["ais", "apg", "apg-bd", "apg-ref"],
    "plantseg-root-3d": ["ais", "apg", "apg-bd", "apg-ref"],
    "puma": ["ais", "apg", "apg-bd", "apg-ref"],
    "tissuenet": ["cellpose3", "cellpose-sam", "cellsam", "ais", "apg", "apg-bd", "apg-ref"],
    "tnbc": ["cellpose-sam", "cellsam"],
    "u20s": ["cellpose3", "cellpose-sam", "cellsam"],
    "yeaz": ["cellpose3", "cellpose-sam", "cellsam", "ais", "apg", "apg-bd", "apg-ref"],
}
# The column order of tables and plots before it moved into the metadata (report/tables.py METHOD_ORDER).
OLD_METHOD_ORDER = (
    "amg",
    "sam2-amg",
    "sam3",
    "cellsam",
    "cellpose3",
    "cellpose-sam",
    "ais",
    "apg-ref",
    "apg-bd",
    "apg",
    "classic",
)


def _extras() -> set[str]:
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    with open(REPO / "pyproject.toml", "rb") as handle:
        return set(tomllib.load(handle)["project"]["optional-dependencies"])


@pytest.mark.parametrize("name", METHODS)
def test_metadata_of_every_registered_method(name):
    cls = available_methods()[name]
    meta = cls.meta
    assert isinstance(meta, MethodMeta) and meta.name == name == cls.name
    assert (cls.description, cls.extra, cls.requires) == (meta.description, meta.extra, meta.requires)
    assert meta.description.strip()
    if meta.extra is not None:
        assert meta.extra in _extras(), f"extra '{meta.extra}' of '{name}' is not in pyproject.toml"
        assert meta.requires, f"'{name}' names an extra but no import it needs"
    datasets = {config.id for config in list_datasets()}
    assert meta.trained_on <= datasets, f"unknown dataset ids in trained_on: {meta.trained_on - datasets}"
    assert set(meta.models) in (set(), set(DOMAINS)), "models name every domain or none"
    if meta.models:
        assert meta.default_model is not None
    if meta.paper_row is not None:
        paper = load_paper_msa()
        method_id, setting = meta.paper_row
        assert ((paper["method_id"] == method_id) & (paper["setting"] == setting)).any()
    ok, message = meta.status()
    assert isinstance(ok, bool) and isinstance(message, str) and message


def test_table_orders_are_unique_and_keep_the_papers_order():
    orders = [
        cls.meta.table_order for cls in available_methods().values() if cls.meta.table_order is not None
    ]
    assert len(orders) == len(set(orders))
    assert method_order()[: len(OLD_METHOD_ORDER)] == OLD_METHOD_ORDER
    labels = ["stardist", "classic", "apg[p-1]", "apg", "amg", "zz-user", "instanseg"]
    assert order_methods(labels) == ["amg", "apg", "apg[p-1]", "classic", "instanseg", "stardist", "zz-user"]


def test_trained_marks_equal_the_former_dataset_configs():
    """For every dataset x method: the † of the report equals the one the YAML lists gave."""
    configs = list_datasets()
    index = pd.MultiIndex.from_tuples([(c.domain, c.id) for c in configs], names=["domain", "dataset"])
    table = pd.DataFrame(0.5, index=index, columns=METHODS)
    marks = trained_marks(table)
    expected = pd.DataFrame(
        [[method in YAML_TRAINED_ON.get(c.id, []) for method in METHODS] for c in configs],
        index=index,
        columns=METHODS,
    )
    pd.testing.assert_frame_equal(marks, expected)
    for config in configs:
        assert sorted(trained_on(config.id)) == sorted(YAML_TRAINED_ON.get(config.id, []))
    assert sorted(trained_on("puma@nuclei")) == sorted(YAML_TRAINED_ON["puma"])  # a variant is its dataset


def test_meta_rejects_what_would_break_reports():
    with pytest.raises(ValueError, match="kebab"):
        MethodMeta(name="My_Model", description="x")
    with pytest.raises(ValueError, match="unknown domain"):
        MethodMeta(name="m", description="x", models={"nuclei": "v1"})
    with pytest.raises(ValueError, match="extra"):
        MethodMeta(name="m", description="x", colour="red")


def test_a_class_declares_each_fact_once():
    meta = MethodMeta(name="test-twice", description="x")
    with pytest.raises(TypeError, match="beside meta"):
        type(
            "Twice", (Segmenter,), {"meta": meta, "name": "test-twice", "_segment": lambda self, image: image}
        )


def test_model_key_comes_from_the_metadata():
    """One model for every domain loads once; models by domain reload; a ``model`` parameter wins."""
    amg, apg = available_methods()["amg"](), available_methods()["apg"]()
    assert {amg._model_key(d) for d in (*DOMAINS, None)} == {"vit_b"}
    assert apg._model_key("nuclei-histo") != apg._model_key("cells-fluo") == apg._model_key(None)
    assert available_methods()["apg"](model="vit_l_lm")._model_key("nuclei-histo") == "vit_l_lm"
    assert available_methods()["classic"]()._model_key("cells-fluo") == "cells-fluo"  # no models: per domain


PLUGIN = '''
"""A method from outside apgbench: threshold at the mean, connected components."""

import numpy as np
from scipy import ndimage as ndi

from apgbench.methods import MethodMeta, Segmenter


class ToyThreshold(Segmenter):
    meta = MethodMeta(
        name="toy-threshold",
        description="Mean threshold + connected components (a plugin)",
        table_order=5,
        trained_on=frozenset({"synthetic-nuclei"}),
        paper_row=("cellsam", "default"),
        weights_status=lambda: (True, "ready (no weights)"),
    )
    default_params = {"offset": 0.0}

    def _segment(self, image):
        grey = image.mean(axis=-1) if image.ndim == 3 else image.astype(float)
        labels, _ = ndi.label(grey > grey.mean() + self.params["offset"])
        return labels
'''


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """A package and its dist-info with an ``apgbench.methods`` entry point, on sys.path; the registry is
    reloaded with it and restored afterwards."""
    site = tmp_path / "site"
    (site / "apgbench_toy_plugin").mkdir(parents=True)
    (site / "apgbench_toy_plugin" / "__init__.py").write_text(textwrap.dedent(PLUGIN))
    dist = site / "apgbench_toy_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: apgbench-toy-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[apgbench.methods]\ntoy-threshold = apgbench_toy_plugin:ToyThreshold\n"
    )
    monkeypatch.syspath_prepend(str(site))
    registry.available_methods()  # built-ins first; the copy below leaves with the test
    monkeypatch.setattr(registry, "_REGISTRY", copy.deepcopy(registry._REGISTRY))
    monkeypatch.setattr(registry, "_LOADED", False)
    yield
    sys.modules.pop("apgbench_toy_plugin", None)


def test_plugin_method_gets_a_full_report_row(plugin, roots, tmp_path):
    from apgbench.report import build_report
    from apgbench.runner import run_benchmark

    assert "toy-threshold" in available_methods()
    assert registry.method_status(available_methods()["toy-threshold"]) == (True, "ready (no weights)")
    results, _ = roots
    for method in ("classic", "toy-threshold"):
        run_benchmark("synthetic-nuclei", method, results_root=results, show_progress=False)
    report = build_report(results, tmp_path / "report", formats=("md", "csv"), n_boot=50)
    assert list(report.table.columns) == ["toy-threshold", "classic"]  # its table_order puts it first
    markdown = (tmp_path / "report" / "msa_table.md").read_text()
    row = next(line for line in markdown.splitlines() if "| synthetic-nuclei |" in line)
    toy, classic = row.split("|")[3:5]
    assert "†" in toy and "†" not in classic  # trained on synthetic-nuclei, from its metadata
    assert paper_value("dsb", "toy-threshold") == paper_value("dsb", "cellsam")  # its paper row


def test_slim_interface():
    """``segment`` is final, the unused batch path is gone, one-model methods need no ``_model_key``."""
    assert getattr(Segmenter.segment, "__final__", False)
    assert not hasattr(Segmenter, "segment_batch") and not hasattr(Segmenter, "_segment_batch")
    for name in ("amg", "sam2-amg", "sam3", "cellsam", "cellpose-sam", "cellpose3", "ais", "apg", "apg-bd"):
        cls = available_methods()[name]
        assert all("_model_key" not in vars(klass) for klass in cls.__mro__ if klass is not Segmenter), name
    with pytest.raises(TypeError, match="declares no"):
        type("Nameless", (Segmenter,), {"_segment": lambda self, image: image})()


def test_validate_names_a_method_with_an_unknown_trained_on_dataset(register_methods):
    from typer.testing import CliRunner

    from apgbench.cli import app

    ok = CliRunner().invoke(app, ["validate"])
    assert ok.exit_code == 0, ok.output
    typo = type(
        "Typo",
        (Segmenter,),
        {
            "meta": MethodMeta(name="test-typo", description="x", trained_on=frozenset({"dsb", "livcell"})),
            "_segment": lambda self, image: image,
        },
    )
    register_methods(typo)
    result = CliRunner().invoke(app, ["validate"])
    output = " ".join(result.output.split())  # rich wraps long lines
    assert result.exit_code == 1 and "Method 'test-typo'" in output and "trained_on: livcell." in output
