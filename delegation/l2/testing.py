"""Conformance suites for the L2 protocols, for tests only (product code never imports this).

`EmbedderTests` runs against every `Embedder`, `L2StoreTests` against every `L2Store` (the
local one now, a sharded one on the fleet later): subclass, supply the factory, done. The
suites check against ground truth read another way: weight checksums hashed from the files
by the subclass, cosines recomputed here with numpy, hand-labelled paraphrase triples.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import numpy as np
import pytest

from delegation.l2.embedder import Embedder
from delegation.l2.errors import EmbedderInputError
from delegation.l2.keys import BucketKey
from delegation.l2.store import L2Entry, L2Store
from storage.testing import FakeClock

# --- embedders ---------------------------------------------------------------------------


class EmbedderTests:
    """Conformance suite for `Embedder`; subclass it once per implementation.

    Subclasses implement `make_embedder` and `expected_sha256` (computed independently,
    e.g. by hashing the weight file) and may extend `triples`.
    """

    triples: ClassVar[tuple[tuple[str, str, str], ...]] = (
        ("How do I reset my password?", "How can I reset my password?",
         "What time does the bakery open?"),
        ("Cancel my subscription", "Please cancel my subscription",
         "Is it going to rain tomorrow?"),
    )
    """(anchor, a rewording of it, an unrelated text): the rewording must score higher."""

    texts: ClassVar[tuple[str, ...]] = (
        "How do I reset my password?", "", "x", "Ünïcödé text: 東京で会いましょう 🙂",
        "a long text " * 300,
    )

    def make_embedder(self) -> Embedder:
        raise NotImplementedError

    def expected_sha256(self) -> str:
        raise NotImplementedError

    @pytest.fixture(scope="class")
    @classmethod
    def embedder(cls) -> Embedder:
        return cls().make_embedder()

    def test_satisfies_protocol(self, embedder: Embedder) -> None:
        assert isinstance(embedder, Embedder)
        assert isinstance(embedder.model_id, str) and embedder.model_id
        assert isinstance(embedder.dimension, int) and embedder.dimension > 0

    def test_weights_checksum_matches_an_independent_hash(self, embedder: Embedder) -> None:
        assert embedder.weights_sha256 == self.expected_sha256()
        assert len(embedder.weights_sha256) == 64
        int(embedder.weights_sha256, 16)

    def test_rows_are_unit_float32_of_the_stated_dimension(self, embedder: Embedder) -> None:
        vectors = embedder.embed(list(self.texts))
        assert vectors.dtype == np.float32
        assert vectors.shape == (len(self.texts), embedder.dimension)
        assert np.all(np.isfinite(vectors))
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)

    def test_empty_batch(self, embedder: Embedder) -> None:
        assert embedder.embed([]).shape == (0, embedder.dimension)

    def test_deterministic_across_calls_and_instances(self, embedder: Embedder) -> None:
        first = embedder.embed(list(self.texts))
        again = embedder.embed(list(self.texts))
        other = self.make_embedder().embed(list(self.texts))
        np.testing.assert_array_equal(first, again)
        np.testing.assert_array_equal(first, other)
        assert self.make_embedder().model_id == embedder.model_id

    def test_a_row_does_not_depend_on_its_batch(self, embedder: Embedder) -> None:
        batch = embedder.embed(list(self.texts))
        for i, text in enumerate(self.texts):
            np.testing.assert_allclose(embedder.embed([text])[0], batch[i], atol=1e-5)

    def test_rewording_scores_above_unrelated(self, embedder: Embedder) -> None:
        for anchor, rewording, unrelated in self.triples:
            a, r, u = embedder.embed([anchor, rewording, unrelated])
            assert float(a @ r) > float(a @ u), (anchor, rewording, unrelated)

    def test_different_texts_differ_and_same_text_is_cosine_one(self,
                                                                 embedder: Embedder) -> None:
        a, b, c = embedder.embed(["Track order 48213", "What is the capital of France?",
                                  "Track order 48213"])
        assert float(a @ b) < 0.999
        assert float(a @ c) == pytest.approx(1.0, abs=1e-5)

    def test_non_strings_are_refused(self, embedder: Embedder) -> None:
        with pytest.raises(EmbedderInputError) as info:
            embedder.embed(["fine", 42])  # type: ignore[list-item]
        assert isinstance(info.value, TypeError)
        assert "item 1" in str(info.value)
        with pytest.raises(EmbedderInputError):
            embedder.embed("a bare string is not a batch")


# --- stores ------------------------------------------------------------------------------


def unit(rng: np.random.Generator, dimension: int) -> np.ndarray:
    """A random unit vector (float32)."""
    v = rng.standard_normal(dimension).astype(np.float32)
    return v / np.linalg.norm(v)


class L2StoreTests:
    """Conformance suite for `L2Store`; subclass it once per implementation.

    Subclasses implement `make_store(max_entries, ttl_s, timer)`; the store must treat
    `exact_max`-sized buckets however it likes, but return exact cosines.
    """

    dimension: ClassVar[int] = 32
    model: ClassVar[str] = "test-model"

    def make_store(self, max_entries: int, ttl_s: float,
                   timer: Callable[[], float]) -> L2Store:
        raise NotImplementedError

    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock()

    @pytest.fixture
    def store(self, clock: FakeClock) -> L2Store:
        return self.make_store(100, 60.0, clock)

    def entry(self, bucket: BucketKey, text: str, value: object,
              vector: np.ndarray | None = None) -> L2Entry:
        return L2Entry(bucket, f"k:{text}", (text,), value,
                       self.model if vector is not None else None, vector, 0.0)

    def test_exact_round_trip_within_its_bucket_only(self, store: L2Store) -> None:
        b1, b2 = BucketKey("ns", "f", "d1"), BucketKey("ns", "f", "d2")
        store.put(self.entry(b1, "hello there", "v1"))
        found = store.get_exact(b1, "k:hello there")
        assert found is not None and found.value == "v1" and found.texts == ("hello there",)
        assert store.get_exact(b2, "k:hello there") is None
        assert store.get_exact(b1, "k:other") is None

    def test_namespaces_never_share_entries(self, store: L2Store) -> None:
        rng = np.random.default_rng(1)
        v = unit(rng, self.dimension)
        mine, theirs = BucketKey("tenant-a", "f", "d"), BucketKey("tenant-b", "f", "d")
        store.put(self.entry(mine, "text", "a's answer", v))
        assert store.get_exact(theirs, "k:text") is None
        assert store.nearest(theirs, self.model, v, 4) == []
        assert [e.value for e, _ in store.nearest(mine, self.model, v, 4)] == ["a's answer"]

    def test_nearest_orders_by_exact_cosine(self, store: L2Store) -> None:
        rng = np.random.default_rng(2)
        bucket = BucketKey("ns", "f", "d")
        vectors = [unit(rng, self.dimension) for _ in range(20)]
        for i, v in enumerate(vectors):
            store.put(self.entry(bucket, f"t{i}", i, v))
        query = unit(rng, self.dimension)
        found = store.nearest(bucket, self.model, query, 5)
        truth = sorted(range(20), key=lambda i: -float(vectors[i].astype(np.float64)
                                                       @ query.astype(np.float64)))[:5]
        assert [e.value for e, _ in found] == truth
        for entry, similarity in found:
            expected = float(vectors[entry.value].astype(np.float64) @ query.astype(np.float64))
            assert similarity == pytest.approx(expected, abs=1e-5)

    def test_nearest_only_for_its_model(self, store: L2Store) -> None:
        v = unit(np.random.default_rng(3), self.dimension)
        bucket = BucketKey("ns", "f", "d")
        store.put(self.entry(bucket, "t", "x", v))
        assert store.nearest(bucket, "another-model", v, 4) == []

    def test_put_replaces_the_same_texts(self, store: L2Store) -> None:
        rng = np.random.default_rng(4)
        bucket = BucketKey("ns", "f", "d")
        store.put(self.entry(bucket, "t", "old", unit(rng, self.dimension)))
        v = unit(rng, self.dimension)
        store.put(self.entry(bucket, "t", "new", v))
        assert len(store) == 1
        found = store.get_exact(bucket, "k:t")
        assert found is not None and found.value == "new"
        assert [e.value for e, _ in store.nearest(bucket, self.model, v, 4)] == ["new"]

    def test_entries_expire_after_ttl(self, store: L2Store, clock: FakeClock) -> None:
        v = unit(np.random.default_rng(5), self.dimension)
        bucket = BucketKey("ns", "f", "d")
        store.put(self.entry(bucket, "t", "x", v))
        clock.advance(59.0)
        assert store.get_exact(bucket, "k:t") is not None
        clock.advance(1.0)
        assert store.get_exact(bucket, "k:t") is None
        assert store.nearest(bucket, self.model, v, 4) == []
        assert store.stats().expirations >= 1

    def test_size_bound_evicts_least_recently_used(self, clock: FakeClock) -> None:
        store = self.make_store(3, 60.0, clock)
        bucket = BucketKey("ns", "f", "d")
        for name in ("a", "b", "c"):
            store.put(self.entry(bucket, name, name))
        assert store.get_exact(bucket, "k:a") is not None  # "b" is now the oldest
        store.put(self.entry(bucket, "d", "d"))
        assert len(store) == 3
        assert store.get_exact(bucket, "k:b") is None
        assert all(store.get_exact(bucket, f"k:{n}") is not None for n in "acd")
        assert store.stats().evictions == 1

    def test_invalidate_function_and_namespace(self, store: L2Store) -> None:
        rng = np.random.default_rng(6)
        keys = [BucketKey(ns, fn, "d") for ns in ("n1", "n2") for fn in ("f", "g")]
        for key in keys:
            store.put(self.entry(key, "t", f"{key.namespace}/{key.function}",
                                 unit(rng, self.dimension)))
        assert store.invalidate_function("n1", "f") == 1
        assert store.get_exact(keys[0], "k:t") is None
        assert store.get_exact(keys[1], "k:t") is not None
        assert store.invalidate_namespace("n2") == 2
        assert len(store) == 1
        assert store.get_exact(keys[1], "k:t") is not None
        assert store.stats().invalidations == 3

    def test_stats_count_puts(self, store: L2Store) -> None:
        bucket = BucketKey("ns", "f", "d")
        for i in range(4):
            store.put(self.entry(bucket, f"t{i}", i))
        stats = store.stats()
        assert (stats.entries, stats.puts) == (4, 4)

    def test_find_answers_exact_first_then_nearest(self, store: L2Store) -> None:
        rng = np.random.default_rng(8)
        bucket = BucketKey("ns", "f", "d")
        v = unit(rng, self.dimension)
        store.put(self.entry(bucket, "stored text", "answer", v))
        calls: list[int] = []

        def query() -> np.ndarray:
            calls.append(1)
            return v

        exact = store.find(bucket, "k:stored text", self.model, query, 4)
        assert exact.exact is not None and exact.exact.value == "answer" and exact.nearest == []
        near = store.find(bucket, "k:other text", self.model, query, 4)
        assert near.exact is None
        assert [(e.value, round(s, 5)) for e, s in near.nearest] == [("answer", 1.0)]
        assert len(calls) <= 2  # at most once per find
        assert store.find(bucket, "k:other text", "another-model", query, 4).nearest == []
        exact_only = store.find(bucket, "k:other text", self.model, None, 4)
        assert (exact_only.exact, exact_only.nearest) == (None, [])
        other = store.find(BucketKey("ns", "f", "elsewhere"), "k:stored text", self.model,
                           query, 4)
        assert (other.exact, other.nearest) == (None, [])

    def test_many_vectors_still_find_exact_duplicates(self, clock: FakeClock) -> None:
        store = self.make_store(5000, 60.0, clock)
        rng = np.random.default_rng(7)
        bucket = BucketKey("ns", "f", "d")
        vectors = [unit(rng, self.dimension) for _ in range(3000)]
        for i, v in enumerate(vectors):
            store.put(self.entry(bucket, f"t{i}", i, v))
        for i in range(0, 3000, 97):
            (entry, similarity), *_ = store.nearest(bucket, self.model, vectors[i], 1)
            assert entry.value == i and similarity == pytest.approx(1.0, abs=1e-5)
