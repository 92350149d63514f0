"""``cellsam``: conversion of CellSAM's documented outputs, token handling, install pin.

cellSAM installs only from its git repository, so the library path cannot run here: these tests exercise
the wrapper on outputs of the structure ``segment_cellular_image`` documents (and its no-cell return).
"""

from __future__ import annotations

import numpy as np
import pytest

from apgbench.methods import get_method
from apgbench.methods.base import MethodUnavailableError
from apgbench.methods.cellsam import (
    CELLSAM_COMMIT,
    CellSAM,
    cellsam_to_labels,
    cellsam_weights_path,
    installed_commit,
)

from ._helpers import fake_distribution


def test_registered_with_pinned_commit():
    assert get_method("cellsam") is CellSAM
    assert len(CELLSAM_COMMIT) == 40
    from pathlib import Path

    import tomllib

    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    extra = pyproject["project"]["optional-dependencies"]["cellsam"]
    assert any(CELLSAM_COMMIT in requirement for requirement in extra)


def test_labels_from_documented_outputs():
    mask = np.zeros((6, 8), np.int32)  # segment_cellular_image: integer (H, W) label image
    mask[1:3, 1:4], mask[4:6, 5:8] = 1, 2
    out = cellsam_to_labels(mask, (6, 8))
    assert out.dtype == np.uint32 and set(np.unique(out)) == {0, 1, 2}
    assert cellsam_to_labels(mask[None], (6, 8)).shape == (6, 8)
    # No cell found: cellSAM returns zeros shaped like its channel-first tensor, (3, H, W).
    assert not cellsam_to_labels(np.zeros((3, 6, 8), np.int32), (6, 8)).any()
    assert not cellsam_to_labels(None, (6, 8)).any()
    assert cellsam_to_labels(mask.astype(np.float64), (6, 8)).max() == 2
    many = np.arange(1, 301 * 301 + 1, dtype=np.int64).reshape(301, 301)
    assert cellsam_to_labels(many, (301, 301)).max() == 301 * 301


@pytest.mark.parametrize(
    "bad", [np.ones((3, 6, 8), np.int32), np.full((6, 8), 0.5), np.full((6, 8), -1), np.zeros((8, 6), int)]
)
def test_malformed_outputs_are_errors(bad):
    with pytest.raises(ValueError):
        cellsam_to_labels(bad, (6, 8))


def test_token_missing_is_stated(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("DEEPCELL_ACCESS_TOKEN", raising=False)
    ok, message = CellSAM.meta.weights_status()
    assert not ok and "DEEPCELL_ACCESS_TOKEN" in message and "users.deepcell.org" in message
    monkeypatch.setenv("DEEPCELL_ACCESS_TOKEN", "x")
    assert CellSAM.meta.weights_status()[0]
    path = cellsam_weights_path()
    assert path == tmp_path / ".deepcell" / "models" / "cellsam_v1.2" / "cellsam_general.pt"


def test_missing_library_names_the_extra(monkeypatch):
    monkeypatch.setattr("apgbench.methods.base.missing_modules", lambda modules: ["cellSAM"])
    with pytest.raises(MethodUnavailableError, match=r"apgbench\[cellsam\]"):
        CellSAM().prepare("cpu")


def _git_install(commit):
    """pip's direct_url.json for ``pip install git+https://github.com/vanvalenlab/cellSAM@<commit>``."""
    return {"url": "https://github.com/vanvalenlab/cellSAM", "vcs_info": {"vcs": "git", "commit_id": commit}}


@pytest.mark.parametrize(
    ("direct_url", "commit"),
    [(_git_install(CELLSAM_COMMIT), CELLSAM_COMMIT), (_git_install("f" * 40), "f" * 40), (None, None)],
)
def test_info_reads_the_installed_commit(tmp_path, monkeypatch, direct_url, commit):
    """The commit comes from pip's install record: another commit shows as such, a plain install as None."""
    fake_distribution(tmp_path, "cellSAM", "0.0.9", direct_url=direct_url)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert installed_commit() == commit
    info = CellSAM().info()
    assert info["commit"] == commit and info["pinned_commit"] == CELLSAM_COMMIT
    assert info["library"] == "cellSAM==0.0.9" and info["model"] == "cellsam_general v1.2"
