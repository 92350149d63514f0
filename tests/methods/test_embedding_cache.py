"""The opt-in embedding cache (issue 14.3): keyed, atomic, size-capped LRU, corrupt entries recomputed."""

from __future__ import annotations

import os
import time

import numpy as np

from apgbench.methods.embedding_cache import EmbeddingCache, active_cache, use_cache, within_cache
from apgbench.methods.musam import MicroSamAIS, MicroSamAPG, _MicroSam


def _entry(seed: int, size: int = 64) -> dict:
    return {"features": np.random.default_rng(seed).random((1, 4, size, size), dtype=np.float32)}


def test_key_depends_on_image_and_provenance():
    image = np.arange(12, dtype=np.uint8).reshape(3, 4)
    key = EmbeddingCache.key(image, model="vit_b_lm", weights="abc")
    assert key == EmbeddingCache.key(image.copy(), weights="abc", model="vit_b_lm")
    assert key != EmbeddingCache.key(image, model="vit_b_lm", weights="abd")
    assert key != EmbeddingCache.key(image.astype(np.uint16), model="vit_b_lm", weights="abc")
    changed = image.copy()
    changed[0, 0] = 99
    assert key != EmbeddingCache.key(changed, model="vit_b_lm", weights="abc")


def test_round_trip_corrupt_entry_and_lru_eviction(tmp_path):
    cache = EmbeddingCache(tmp_path / "c", max_gb=2.5 * 64 * 64 * 16 / 2**30)  # room for two entries
    cache.put("a", _entry(0))
    np.testing.assert_array_equal(cache.get("a")["features"], _entry(0)["features"])
    (tmp_path / "c" / "a.npz").write_bytes(b"torn")  # a damaged entry is deleted and counts as a miss
    assert cache.get("a") is None and not (tmp_path / "c" / "a.npz").exists()
    cache.put("a", _entry(0))
    old = time.time() - 100
    os.utime(tmp_path / "c" / "a.npz", (old, old))
    cache.put("b", _entry(1))
    cache.get("a")  # a hit refreshes "a": "b" is now the least recently used
    os.utime(tmp_path / "c" / "b.npz", (old, old))
    cache.put("c", _entry(2))
    assert sorted(p.stem for p in (tmp_path / "c").glob("*.npz")) == ["a", "c"]
    assert not list((tmp_path / "c").glob(".*tmp*"))  # no temporary file left behind


def test_cache_is_active_only_inside_the_block(tmp_path):
    assert active_cache() is None
    with use_cache(tmp_path) as cache:
        assert active_cache() is cache
    assert active_cache() is None
    seen = list(within_cache(tmp_path, 1.0, (active_cache() for _ in range(2))))
    assert all(c is not None for c in seen) and active_cache() is None


def test_musam_rerun_with_other_parameters_skips_the_model_stage(tmp_path, monkeypatch):
    calls = []

    def maps(self, image):
        calls.append(1)
        rng = np.random.default_rng(int(image.sum()))
        features = rng.random((1, 256, 64, 64), dtype=np.float32)
        fields = tuple(rng.random(image.shape[:2], dtype=np.float32) for _ in range(3))
        return (
            {"features": features, "input_size": (1024, 1024), "original_size": image.shape[:2]},
            fields,
            (None, None),
        )

    monkeypatch.setattr(_MicroSam, "_maps", maps)
    checkpoint = tmp_path / "weights.pt"
    checkpoint.write_bytes(b"weights")
    image = np.random.default_rng(0).integers(0, 255, (96, 80), dtype=np.uint8)
    results = []
    with use_cache(tmp_path / "cache") as cache:
        for method in (
            MicroSamAIS(checkpoint=str(checkpoint)),
            MicroSamAIS(checkpoint=str(checkpoint), foreground_threshold=0.6),
        ):
            method._prepared, method._weights = True, {"model": "vit_b_lm", "checkpoint": str(checkpoint)}
            results.append(method.segment(image))
        assert len(calls) == 1 and cache.hits == 1
        fresh = MicroSamAIS(checkpoint=str(checkpoint), foreground_threshold=0.6)
        fresh._prepared, fresh._weights = True, {"model": "vit_b_lm", "checkpoint": str(checkpoint)}
        checkpoint.write_bytes(b"other weights")  # other weights: another key, the stage runs again
        fresh._checkpoint_hash = (None, None)
        np.testing.assert_array_equal(fresh.segment(image), results[1])  # same maps from the stand-in
        assert len(calls) == 2
    without = MicroSamAIS(checkpoint=str(checkpoint), foreground_threshold=0.6)
    without._prepared = True
    np.testing.assert_array_equal(without.segment(image), results[1])  # a hit equals a computed stage
    assert len(calls) == 3


def test_tiled_images_are_not_cached(tmp_path, monkeypatch):
    method = MicroSamAPG()
    method.params.update(tile_shape=[32, 32], halo=[8, 8])
    method._prepared = True
    calls = []
    monkeypatch.setattr(
        _MicroSam, "_maps", lambda self, image: calls.append(1) or ({}, (None,) * 3, ((32, 32), (8, 8)))
    )
    with use_cache(tmp_path) as cache:
        method.shared_stage(np.zeros((96, 80), np.uint8))
        assert calls == [1] and cache.misses == 0 and not list(tmp_path.iterdir())
