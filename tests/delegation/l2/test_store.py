"""LocalL2Store runs the store conformance suite; its indexes agree with brute force."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from delegation.l2.index import AdaptiveIndex, ExactIndex, HnswIndex
from delegation.l2.keys import BucketKey
from delegation.l2.store import L2Entry, L2Store, LocalL2Store
from delegation.l2.testing import L2StoreTests, unit


class TestLocalL2Store(L2StoreTests):
    def make_store(self, max_entries: int, ttl_s: float,
                   timer: Callable[[], float]) -> L2Store:
        return LocalL2Store(max_entries, ttl_s, timer=timer, exact_max=64)

    def test_is_private_to_its_process(self) -> None:
        assert LocalL2Store.shared is False

    def test_bucket_moves_to_hnsw_past_exact_max(self) -> None:
        store = LocalL2Store(1000, 60.0, exact_max=8)
        rng = np.random.default_rng(0)
        bucket = BucketKey("ns", "f", "d")
        for i in range(9):
            store.put(L2Entry(bucket, f"k{i}", (f"t{i}",), i, "m", unit(rng, 16)))
            assert store.index_kinds()[(bucket, "m")] == ("exact" if i < 8 else "hnsw")

    def test_bad_bounds(self) -> None:
        with pytest.raises(ValueError):
            LocalL2Store(0)
        with pytest.raises(ValueError):
            LocalL2Store(10, -1.0)


def _vectors(n: int, dimension: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, dimension)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_hnsw_finds_what_brute_force_finds() -> None:
    vectors = _vectors(2000, 48, 1)
    graph, exact = HnswIndex(48), ExactIndex(48)
    graph.add_many(list(range(2000)), vectors)
    for i, v in enumerate(vectors):
        exact.add(i, v)
    queries = _vectors(100, 48, 2)
    agree = sum(graph.search(q, 1)[0][0] == exact.search(q, 1)[0][0] for q in queries)
    assert agree >= 95  # approximate: a miss costs a hit, never a false one
    for q in queries[:10]:
        for key, similarity in graph.search(q, 5):
            assert similarity == pytest.approx(float(vectors[key] @ q), abs=1e-5)


def test_removed_ids_are_never_returned() -> None:
    vectors = _vectors(300, 16, 3)
    for index in (ExactIndex(16), HnswIndex(16), AdaptiveIndex(16, exact_max=50)):
        for i, v in enumerate(vectors):
            index.add(i, v)
        for i in range(0, 300, 2):
            index.remove(i)
        index.remove(10_000)  # absent: nothing happens
        assert len(index) == 150
        for i in range(0, 300, 2):
            assert all(key % 2 == 1 for key, _ in index.search(vectors[i], 3))
        assert index.search(vectors[1], 1)[0][0] == 1


def test_exact_index_updates_in_place_and_handles_small_k() -> None:
    index = ExactIndex(4)
    assert index.search(np.ones(4, dtype=np.float32) / 2, 3) == []
    index.add(1, np.array([1, 0, 0, 0], dtype=np.float32))
    index.add(1, np.array([0, 1, 0, 0], dtype=np.float32))
    assert len(index) == 1
    assert index.search(np.array([0, 1, 0, 0], dtype=np.float32), 5) == [(1, 1.0)]
    assert index.search(np.array([0, 1, 0, 0], dtype=np.float32), 0) == []
