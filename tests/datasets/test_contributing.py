"""CONTRIBUTING.md's checklists "Add a dataset" and "Add a reader", followed step by step.

Each test does what the checklist tells a contributor to do, in the same order, with the same commands
(through the real Typer app), on data served by a localhost HTTP server. If a step stops working (a
command renamed, a new required YAML key, a reader contract changed), the checklist is out of date.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from apgbench.cli import app
from apgbench.config import config_dir
from apgbench.datasets import load_dataset
from apgbench.results import load_scores

from ._helpers import disks, sha256, write, zip_tree

runner = CliRunner()
pytestmark = pytest.mark.network


def _invoke(*args: str):
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


def _own_configs(tmp_path, monkeypatch) -> Path:
    """Step 0 of both checklists: a configs folder of one's own (a copy of the repository's)."""
    configs = tmp_path / "configs"
    shutil.copytree(config_dir(), configs)
    monkeypatch.setenv("APGBENCH_CONFIG_DIR", str(configs))
    return configs


def _dataset_yaml(dataset_id: str, url: str, digest: str, reader: str, options: dict) -> dict:
    """The smallest complete dataset config (CONTRIBUTING.md, "Add a dataset", step 1)."""
    return {
        "id": dataset_id,
        "name": "Disks for the contributing guide",
        "domain": "nuclei-fluo",
        "citation": "apgbench test data",
        "licence": "CC0",
        "source": {"kind": "download", "files": [{"url": url, "filename": "disks.zip", "sha256": digest}]},
        "format": {"reader": reader, "options": options},
        "split": {"description": "Every image is a test image.", "rule": "all"},
        "preparation": {"crop": None},
    }


def _disk_images(folder: Path, n: int = 3) -> dict[str, np.ndarray]:
    labels = {f"im{i}": disks((64, 64), 5, seed=i, radius=4) for i in range(n)}
    for name, lab in labels.items():
        write(folder / "images" / f"{name}.tif", ((lab > 0) * 150 + 30).astype(np.uint8))
        write(folder / "masks" / f"{name}.tif", lab)
    return labels


def test_add_a_dataset_checklist(roots, tmp_path, monkeypatch, server):
    configs = _own_configs(tmp_path, monkeypatch)
    labels = _disk_images(tmp_path / "src")
    archive = zip_tree(tmp_path / "src", tmp_path / "disks.zip")
    url = server.add(archive)

    # 1. One YAML, configs/datasets/<id>.yaml, with the file's sha256 and an existing reader.
    options = {"images": "images/*.tif", "label_sub": ["^images/", "masks/"]}
    config = _dataset_yaml("contrib-disks", url, sha256(archive), "image-folder", options)
    (configs / "datasets" / "contrib-disks.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    # 2. `apgbench validate` checks it with every other config.
    _invoke("validate")
    # 3. `apgbench datasets info` shows it; `datasets download` fetches, verifies and prepares it.
    assert "Disks for the contributing guide" in _invoke("datasets", "info", "contrib-disks").output
    _invoke("datasets", "download", "contrib-disks")
    samples = list(load_dataset("contrib-disks", roots[1]))
    assert [s.image_id for s in samples] == ["images_im0", "images_im1", "images_im2"]
    for sample, truth in zip(samples, labels.values()):
        np.testing.assert_array_equal(sample.labels > 0, truth > 0)
    # 4. One method runs on it end to end.
    _invoke("run", "-d", "contrib-disks", "-m", "classic")
    scores = load_scores(roots[0])
    assert set(scores["dataset"]) == {"contrib-disks"} and len(scores) == 3


def test_add_a_reader_checklist(roots, tmp_path, monkeypatch, server):
    """A new layout: one ``.npy`` per image holding ``(image, labels)`` stacked on the first axis."""
    from apgbench.datasets import readers
    from apgbench.datasets.readers import Entry, ReaderError, register_reader
    from apgbench.datasets.readers._base import entry_id, sorted_glob

    configs = _own_configs(tmp_path, monkeypatch)
    # Registered readers are module state: give this test a copy, so the reader leaves with the test.
    monkeypatch.setattr(readers, "READERS", copy.deepcopy(readers.READERS))

    # 1. A function reader(root, **options) -> list[Entry], registered under the name YAMLs use; each Entry
    #    loads its arrays only when asked, ids come from relative paths, the order is natural.
    @register_reader("stacked-npy")
    def read_stacked_npy(root: Path, *, files: str = "*.npy") -> list[Entry]:
        paths = sorted_glob(root, files)
        if not paths:
            raise ReaderError(f"No file matching '{files}' under {root}.")

        def loader(path: Path):
            return lambda: tuple(np.load(path))

        return [Entry(id=entry_id(p.relative_to(root)), load=loader(p), key=p.stem) for p in paths]

    # 2. A test of the reader alone on a tiny folder in the real layout.
    truth = {f"cell{i}": disks((48, 48), 4, seed=10 + i, radius=4) for i in (1, 2, 10)}
    src = tmp_path / "src"
    for name, lab in truth.items():
        src.mkdir(exist_ok=True)
        np.save(
            src / f"{name}.npy", np.stack([(lab > 0).astype(np.uint16) * 900 + 100, lab.astype(np.uint16)])
        )
    entries = readers.get_reader("stacked-npy")(src)
    assert [e.id for e in entries] == ["cell1", "cell2", "cell10"]  # natural order
    np.testing.assert_array_equal(entries[2].load()[1], truth["cell10"])
    with pytest.raises(ReaderError, match="No file matching"):
        readers.get_reader("stacked-npy")(tmp_path / "nowhere")

    # 3. A dataset YAML naming the reader; then the "Add a dataset" steps.
    archive = zip_tree(src, tmp_path / "disks.zip")
    config = _dataset_yaml("contrib-stacked", server.add(archive), sha256(archive), "stacked-npy", {})
    (configs / "datasets" / "contrib-stacked.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    _invoke("validate")
    _invoke("datasets", "download", "contrib-stacked")
    samples = list(load_dataset("contrib-stacked", roots[1]))
    assert [s.image_id for s in samples] == ["cell1", "cell2", "cell10"]
    np.testing.assert_array_equal(samples[1].labels > 0, truth["cell2"] > 0)
