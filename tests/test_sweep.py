"""`apgbench sweep` (issue 14.2): every grid combination equals a separate run with the same parameters."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest
import skimage as ski

from apgbench import methods as methods_module
from apgbench.apg.testing import OracleModel, decoder_maps_from_labels
from apgbench.datasets import get_dataset_config, load_dataset
from apgbench.methods.musam import MicroSamAIS, MicroSamAPG, MicroSamAPGBoundary, SharedStage
from apgbench.results import read_prediction
from apgbench.runner import run_benchmark
from apgbench.sweep import (
    TunedOnTestWarning,
    best_flags,
    combinations,
    parse_grid,
    sweep,
    sweep_image,
    write_outputs,
)

DATASET = "synthetic-nuclei"


class _Oracle:
    """µSAM methods on a stand-in model: decoder maps and masks from the image's own thresholded objects.

    The maps are the decoder's targets for those objects (:func:`decoder_maps_from_labels`) and each point
    is answered with the object under it (:class:`OracleModel`), so prompts, decoding, NMS and painting are
    the real code paths; only the network is replaced. Counts the shared stages it computes."""

    calls: ClassVar[list] = []

    def _prepare(self, device, domain):
        self._weights = {"model": "oracle"}

    def _objects(self, image):
        image = np.asarray(image, dtype=float)
        image = image.mean(-1) if image.ndim == 3 else image
        return ski.measure.label(image > ski.filters.threshold_otsu(image))

    def shared_stage(self, image):
        _Oracle.calls.append(1)
        objects = self._objects(image)
        return SharedStage(
            objects, decoder_maps_from_labels(objects, min_size=0), (None, None), image.shape[:2]
        )

    def point_model(self, embeddings, shape, tiling):
        return OracleModel(embeddings)


class OracleAIS(_Oracle, MicroSamAIS):
    pass


class OracleAPG(_Oracle, MicroSamAPG):
    pass


class OracleAPGBoundary(_Oracle, MicroSamAPGBoundary):
    pass


@pytest.fixture
def oracle_methods(monkeypatch):
    import copy

    methods_module.available_methods()  # built-ins first, then a copy of the registry for this test only
    monkeypatch.setattr(methods_module, "_REGISTRY", copy.deepcopy(methods_module._REGISTRY))
    for cls in (OracleAIS, OracleAPG, OracleAPGBoundary):
        methods_module._REGISTRY.remove(cls.name)  # the oracle stands in for the built-in method of that id
        methods_module._REGISTRY.add(cls.name, cls)
    _Oracle.calls = []


GRID = ["foreground_threshold=0.4,0.6", "center_distance_threshold=0.3,0.5", "nms_threshold=0.5,0.9"]


@pytest.mark.parametrize("method", ["apg", "apg-bd", "ais"])
def test_sweep_equals_separate_runs(roots, oracle_methods, method, tmp_path):
    grid = parse_grid(GRID if method != "ais" else GRID[:2])
    with pytest.warns(TunedOnTestWarning, match="test split"):
        table, timings = sweep(DATASET, method, grid, limit=2)
    assert len(table) == len(combinations(method, grid)) and len(_Oracle.calls) == 2  # once per image
    if method != "ais":
        assert timings["prompt_sets"] == 2 * 4  # nms_threshold does not change the prompts: decoded once
    data = load_dataset(get_dataset_config(DATASET))
    first = data.get(data.image_ids[0])
    segmenter = methods_module.get_method(method)()
    segmenter.prepare("cpu", "nuclei-fluo")
    swept = sweep_image(segmenter, first.image, combinations(method, grid))
    for (_, row), labels in zip(table.iterrows(), swept):
        params = {k: row[k].item() for k in grid}
        summary = run_benchmark(
            DATASET, method, params=params, results_root=tmp_path / "runs", limit=2, show_progress=False
        )
        assert row["msa"] == pytest.approx(summary.mean_msa, abs=1e-12)
        np.testing.assert_array_equal(labels, read_prediction(summary.directory, first.image_id))


def test_outputs_and_best_flags(roots, oracle_methods, tmp_path):
    grid = parse_grid(GRID)
    with pytest.warns(TunedOnTestWarning):
        table, _ = sweep(DATASET, "apg", grid, limit=1)
    paths = write_outputs(table, grid, tmp_path / "out", "apg on synthetic-nuclei")
    assert all(p.stat().st_size > 0 for p in paths)
    best = table.loc[table["msa"].idxmax()]
    flags = best_flags(table, grid)
    assert flags.count("--param") == 3 and f"nms_threshold={best['nms_threshold']:g}" in flags


def test_bad_grids_are_one_sentence():
    with pytest.raises(ValueError, match="key=v1,v2"):
        parse_grid(["nms_threshold"])
    with pytest.raises(ValueError, match="not an algorithm parameter of 'apg'"):
        combinations("apg", {"tile_shape": [None]})
    with pytest.raises(ValueError, match="cannot be swept"):
        combinations("classic", {"h": [1.0]})


def test_cli_sweep_prints_the_best_flags(roots, oracle_methods, tmp_path):
    from typer.testing import CliRunner

    from apgbench.cli import app

    result = CliRunner().invoke(
        app,
        [
            "sweep",
            "-d",
            DATASET,
            "-m",
            "apg",
            "--grid",
            "nms_threshold=0.5,0.9",
            "--grid",
            "foreground_threshold=0.4,0.6",
            "--limit",
            "1",
            "--out",
            str(tmp_path / "sw"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "best: apgbench run --method apg --param nms_threshold=" in result.output
    assert "test split" in result.output and (tmp_path / "sw" / "sweep.png").is_file()
    bad = CliRunner().invoke(app, ["sweep", "-d", DATASET, "-m", "apg", "--grid", "tile_shape=1"])
    assert bad.exit_code == 1 and "not an algorithm parameter" in bad.output
