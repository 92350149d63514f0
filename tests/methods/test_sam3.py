"""``sam3``: prompt handling, painting by score and tiling, without the model (it cannot build on a CPU)."""

from __future__ import annotations

import numpy as np
import pytest

from apgbench.methods import get_method
from apgbench.methods import sam3 as sam3_module
from apgbench.methods.base import MethodUnavailableError
from apgbench.methods.sam3 import Sam3, find_bpe, paint_by_score, paint_objects

from ._helpers import LIBRARY_WARNINGS, assert_valid_labels, pixel_masks

pytestmark = [pytest.mark.filterwarnings(w) for w in LIBRARY_WARNINGS]


def test_prompt_handling():
    assert get_method("sam3") is Sam3
    assert Sam3().params["prompt"] == "cell"
    assert Sam3(prompt=None).params["prompt"] == "cell"  # a dataset without its own prompt
    assert Sam3(prompt="  nucleus ").params["prompt"] == "nucleus"
    with pytest.raises(ValueError, match="non-empty"):
        Sam3(prompt=" ")


def test_paint_by_ascending_score():
    a = np.zeros((10, 10), bool)
    a[0:6, 0:6] = True
    b = np.zeros((10, 10), bool)
    b[4:10, 4:10] = True
    labels = paint_by_score([a, b], [0.9, 0.4], (10, 10))
    assert labels[5, 5] == labels[0, 0]  # the higher-scoring mask wins the overlap
    assert labels[9, 9] not in (0, labels[0, 0])
    flipped = paint_by_score([a, b], [0.4, 0.9], (10, 10))
    assert flipped[5, 5] == flipped[9, 9]
    assert not paint_by_score([], [], (4, 4)).any()
    with pytest.raises(ValueError, match="2 masks but 1 scores"):
        paint_by_score([a, b], [0.5], (10, 10))


def test_paint_in_query_order_by_default_like_the_paper():
    """prepare_baselines.py:50-52 (4f6d45e2): ``final_mask[mask] = i`` in the processor's order."""
    a = np.zeros((10, 10), bool)
    a[0:6, 0:6] = True
    b = np.zeros((10, 10), bool)
    b[4:10, 4:10] = True
    labels = paint_objects([a, b], [0.9, 0.4], (10, 10))
    assert labels[5, 5] == labels[9, 9] != labels[0, 0]  # the later mask wins, whatever its score
    assert Sam3().params["paint_order"] == "query" and Sam3().params["retile"] is False
    with pytest.raises(ValueError, match="paint_order"):
        paint_objects([a], [0.1], (10, 10), order="area")


def test_paint_more_than_65535_objects():
    shape, count = (260, 260), 66_000
    scores = np.random.default_rng(0).random(count)
    labels = paint_by_score(pixel_masks(shape, count), scores, shape)
    assert labels.dtype == np.uint32 and labels.max() == count and np.count_nonzero(labels) == count


def _grid_objects(shape=(512, 512), step=24, size=8):
    """Squares on a grid (441 objects in 512 x 512, 100 in 256 x 256); a row and a column of them straddle
    the tile split at 256, so both neighbouring tiles see them whole."""
    truth = np.zeros(shape, dtype=np.uint32)
    index = 0
    for r in range(14, shape[0] - size, step):
        for c in range(14, shape[1] - size, step):
            index += 1
            truth[r : r + size, c : c + size] = index
    return truth


class _FakeSam3(Sam3):
    """Sam3 with a detector that sees the true objects of its tile, capped at the 200-query budget."""

    def __init__(self, truth, **params):
        super().__init__(**params)
        self.truth, self.calls, self.tiles = truth, 0, []
        self._prepared = True

    def _detect(self, tile_rgb):
        self.calls += 1
        assert tile_rgb.dtype == np.uint8 and tile_rgb.shape[-1] == 3
        tile = self.truth[self._current]
        assert tile.shape == tile_rgb.shape[:2]
        ids = [i for i in np.unique(tile) if i]
        ids = ids[: self.params["max_objects"]]
        scores = np.linspace(0.6, 0.99, len(ids))
        return [tile == i for i in ids], scores

    def _collect(self, rgb, region, masks, scores, windows):
        self._current = region.slices
        self.tiles.append(region.tile)
        return super()._collect(rgb, region, masks, scores, windows)


def _same_partition(a, b):
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    return len(pairs[0]) == len(np.unique(a)) == len(np.unique(b))


def test_dense_image_is_tiled_and_every_object_kept_once():
    truth = _grid_objects()
    image = (truth > 0).astype(np.uint16) * 1000
    method = _FakeSam3(truth, retile=True)
    labels = method.segment(image)
    assert_valid_labels(labels, truth.shape)
    assert labels.max() == truth.max() == 441
    assert _same_partition(labels, truth)
    assert method.calls == 1 + 4  # the whole image saturates; each 256 + overlap tile holds < 180 objects


def test_no_tiling_when_budget_not_reached_or_disabled():
    truth = _grid_objects((256, 256))  # 100 objects < 0.9 * 200
    method = _FakeSam3(truth)
    assert method.segment(truth.astype(np.float32)).max() == 100 and method.calls == 1
    dense = _grid_objects()
    capped = _FakeSam3(dense, retile=True, min_tile=512)  # 512 is too small to split: keep the capped result
    assert capped.segment(dense.astype(np.float32)).max() == 200 and capped.calls == 1
    paper = _FakeSam3(dense)  # the paper's procedure: one call per image, however dense
    assert paper.segment(dense.astype(np.float32)).max() == 200 and paper.calls == 1


def test_cpu_refused_with_one_sentence():
    pytest.importorskip("torch", reason="torch is not installed")
    pytest.importorskip("sam3", reason="sam3 is not installed")
    with pytest.raises(MethodUnavailableError, match="needs a CUDA GPU") as err:
        Sam3().prepare("cpu")
    assert str(err.value).count(". ") == 0


def test_detect_converts_processor_output():
    torch = pytest.importorskip("torch", reason="torch is not installed")
    from PIL import Image

    class Processor:
        def set_image(self, image):
            assert isinstance(image, Image.Image) and image.size == (7, 5)  # PIL: (width, height)
            return {}

        def set_text_prompt(self, prompt, state):
            assert prompt == "nucleus"
            masks = torch.zeros(2, 1, 5, 7, dtype=torch.bool)
            masks[0, 0, :2], masks[1, 0, 3:] = True, True
            return {"masks": masks, "scores": torch.tensor([0.7, 0.9])}

    method = Sam3(prompt="nucleus")
    method._processor = Processor()
    masks, scores = method._detect(np.zeros((5, 7, 3), np.uint8))
    assert len(masks) == 2 and masks[0].shape == (5, 7) and masks[0].dtype == bool
    assert scores.tolist() == pytest.approx([0.7, 0.9])


def test_gated_weights_status_and_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    ok, message = Sam3.meta.weights_status()
    assert not ok and "huggingface.co/facebook/sam3" in message
    snapshot = tmp_path / "models--facebook--sam3" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (snapshot / "sam3.pt").write_bytes(b"")
    assert Sam3.meta.weights_status()[0]


def test_find_bpe(tmp_path, monkeypatch):
    vocab = tmp_path / "bpe.txt.gz"
    with pytest.raises(MethodUnavailableError, match="does not exist"):
        find_bpe(vocab)
    vocab.write_bytes(b"")
    assert find_bpe(vocab) == vocab
    monkeypatch.setattr(sam3_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MethodUnavailableError, match="open-clip-torch"):
        find_bpe()
