"""Dataset variants (``id@name``): config derivation, their own prepared file, the CLI, the report's paper column."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from apgbench.cli import app
from apgbench.datasets import DatasetConfig, get_dataset_config, load_dataset, resolve_dataset_ids
from apgbench.datasets.manage import import_dataset
from apgbench.report.paper import paper_value

from ._helpers import write, zip_tree
from .test_torchem_oracle_polygons import MONUSEG_TEST, _aperio_xml, _ellipse

runner = CliRunner()


def test_variant_config_overrides_and_is_its_own_dataset():
    base, variant = get_dataset_config("hpa"), get_dataset_config("hpa@corrected")
    assert variant.id == "hpa@corrected" and variant.base_id == "hpa" and variant.variant == "corrected"
    assert (
        base.preparation.label_resize == "linear-truncate" and variant.preparation.label_resize == "nearest"
    )
    assert variant.format == base.format and variant.source == base.source and variant.variants == {}
    assert get_dataset_config("monuseg@corrected").format.options["first_id"] == 1
    assert get_dataset_config("monuseg").format.options["first_id"] == 0
    assert "monuseg@corrected" not in resolve_dataset_ids(["all"])  # variants only when asked for
    assert not np.isnan(paper_value("monuseg", "ais")) and np.isnan(paper_value("monuseg@corrected", "ais"))
    with pytest.raises(KeyError, match=r"no variant 'fixed'.*corrected"):
        get_dataset_config("monuseg@fixed")
    data = get_dataset_config("hpa").model_dump()
    data["variants"]["corrected"]["preparation"] = {"label_resize": "cubic"}
    with pytest.raises(ValidationError, match="label_resize"):
        DatasetConfig.model_validate(data)  # a broken variant fails when the YAML is read


def test_cli_prepare_variant_from_the_cached_download(tmp_path, roots):
    _, data = roots
    folder = tmp_path / "src" / "MoNuSegTestData"
    write(folder / f"{MONUSEG_TEST[0]}.tif", np.zeros((600, 600, 3), np.uint8))
    (folder / f"{MONUSEG_TEST[0]}.xml").write_text(
        _aperio_xml([_ellipse(200 + 40 * k, 300, 15, 12) for k in range(6)])
    )
    archive = zip_tree(tmp_path / "src", tmp_path / "monuseg_test.zip")

    with pytest.raises(FileNotFoundError, match="prepare monuseg --variant corrected"):
        load_dataset("monuseg@corrected", data)
    missing = runner.invoke(app, ["datasets", "prepare", "monuseg", "--variant", "corrected"])
    assert missing.exit_code == 1 and "datasets download monuseg" in missing.output

    with pytest.warns(UserWarning, match="differs from the published file"):
        import_dataset(get_dataset_config("monuseg"), archive, data, verify=False)
    paper_file = data / "monuseg" / "prepared.h5"
    before = paper_file.read_bytes()
    result = runner.invoke(app, ["datasets", "prepare", "monuseg", "--variant", "corrected"])
    assert result.exit_code == 0, result.output
    assert "monuseg@corrected" in result.output and paper_file.read_bytes() == before  # paper split untouched
    paper = next(iter(load_dataset("monuseg", data)))
    corrected = next(iter(load_dataset("monuseg@corrected", data)))
    assert np.unique(paper.labels).size + 1 == np.unique(corrected.labels).size == 7
    (data / "monuseg@corrected" / "prepared.h5").unlink()
    again = runner.invoke(app, ["datasets", "download", "monuseg@corrected"])  # base cached: nothing fetched
    assert again.exit_code == 0 and (data / "monuseg@corrected" / "prepared.h5").is_file(), again.output
    assert not (data / "monuseg@corrected" / "raw").exists()  # the variant shares the base's download
    info = runner.invoke(app, ["datasets", "info", "monuseg"])
    assert info.exit_code == 0 and "monuseg@corrected" in info.output
    bad = runner.invoke(app, ["datasets", "prepare", "monuseg", "--variant", "nope"])
    assert bad.exit_code == 1 and "no variant 'nope'" in bad.output
