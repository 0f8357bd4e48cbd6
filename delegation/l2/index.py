"""Nearest-neighbour indexes over unit vectors, keyed by integer ids.

`ExactIndex` scans a numpy matrix (exact, fine up to a few thousand vectors); `HnswIndex`
asks hnswlib (approximate, about 0.2 ms at 100k vectors of dimension 384); `AdaptiveIndex`
starts exact and moves to hnswlib when it grows past `exact_max`. Every index returns
candidates with the cosine computed exactly from the stored vector, so the caller's threshold
is always applied to the true similarity: an approximate index can miss a neighbour (a lost
hit), never invent one (a false hit).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from delegation.l2.config import DEFAULT_EXACT_MAX

DEFAULT_HNSW_M = 16
DEFAULT_HNSW_EF = 64
DEFAULT_HNSW_EF_CONSTRUCTION = 100


class VectorIndex(Protocol):
    """A mutable set of `(id, unit vector)` that finds the nearest ids to a query."""

    def add(self, key: int, vector: np.ndarray) -> None:
        """Insert (or replace) `key`."""
        ...

    def remove(self, key: int) -> None:
        """Drop `key` if present."""
        ...

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """Up to `k` `(id, exact cosine)` pairs, most similar first."""
        ...

    def __len__(self) -> int: ...


class ExactIndex:
    """Brute force: one matrix-vector product per search."""

    def __init__(self, dimension: int) -> None:
        self.dimension = dimension
        self._matrix = np.zeros((16, dimension), dtype=np.float32)
        self._keys: list[int] = []
        self._row: dict[int, int] = {}

    def add(self, key: int, vector: np.ndarray) -> None:
        row = self._row.get(key)
        if row is None:
            row = len(self._keys)
            if row == len(self._matrix):
                grown = np.zeros((2 * row, self.dimension), dtype=np.float32)
                grown[:row] = self._matrix
                self._matrix = grown
            self._keys.append(key)
            self._row[key] = row
        self._matrix[row] = vector

    def remove(self, key: int) -> None:
        row = self._row.pop(key, None)
        if row is None:
            return
        last = len(self._keys) - 1
        if row != last:  # move the last row into the hole
            moved = self._keys[last]
            self._matrix[row] = self._matrix[last]
            self._keys[row] = moved
            self._row[moved] = row
        self._keys.pop()

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        n = len(self._keys)
        if n == 0 or k <= 0:
            return []
        scores = self._matrix[:n] @ query
        if k < n:
            top = np.argpartition(-scores, k - 1)[:k]
            top = top[np.argsort(-scores[top], kind="stable")]
        else:
            top = np.argsort(-scores, kind="stable")
        return [(self._keys[i], float(scores[i])) for i in top]

    def vector(self, key: int) -> np.ndarray:
        """The stored vector of `key` (KeyError if absent)."""
        return self._matrix[self._row[key]]

    def items(self) -> list[tuple[int, np.ndarray]]:
        """Every `(id, vector)`."""
        return [(key, self._matrix[row]) for key, row in self._row.items()]

    def __len__(self) -> int:
        return len(self._keys)


class HnswIndex:
    """hnswlib's HNSW graph on inner product; exact cosines from a side copy of the vectors.

    Removed ids are marked deleted and their slots reused by later inserts; hnswlib cannot
    bring a deleted id back, so callers never reuse an id (the store numbers entries afresh).
    """

    def __init__(self, dimension: int, *, m: int = DEFAULT_HNSW_M, ef: int = DEFAULT_HNSW_EF,
                 ef_construction: int = DEFAULT_HNSW_EF_CONSTRUCTION, seed: int = 100,
                 capacity: int = 1024) -> None:
        import hnswlib  # type: ignore[import-untyped]  # only for an index grown past exact

        self.dimension = dimension
        self.ef = ef
        self._graph: Any = hnswlib.Index(space="ip", dim=dimension)
        self._graph.init_index(max_elements=capacity, M=m, ef_construction=ef_construction,
                               random_seed=seed, allow_replace_deleted=True)
        self._graph.set_num_threads(1)
        self._exact = ExactIndex(dimension)  # the vectors, for exact cosines

    def add(self, key: int, vector: np.ndarray) -> None:
        """Insert `key`, or update its vector; a removed id must not be added again."""
        needed = len(self._exact) + 1
        if needed > self._graph.get_max_elements():
            self._graph.resize_index(2 * self._graph.get_max_elements())
        self._graph.add_items(vector.reshape(1, -1), np.array([key]), replace_deleted=True)
        self._exact.add(key, vector)

    def add_many(self, keys: list[int], vectors: np.ndarray) -> None:
        """Insert many new ids at once (ids must not be present)."""
        needed = len(self._exact) + len(keys)
        if needed > self._graph.get_max_elements():
            self._graph.resize_index(max(needed, 2 * self._graph.get_max_elements()))
        self._graph.add_items(vectors, np.array(keys), replace_deleted=True)
        for key, vector in zip(keys, vectors, strict=True):
            self._exact.add(key, vector)

    def remove(self, key: int) -> None:
        if key in self._exact._row:
            self._graph.mark_deleted(key)
            self._exact.remove(key)

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        n = len(self._exact)
        if n == 0 or k <= 0:
            return []
        k = min(k, n)
        self._graph.set_ef(max(self.ef, k))
        labels, _ = self._graph.knn_query(query.reshape(1, -1), k=k)
        found = [(int(key), float(self._exact.vector(int(key)) @ query)) for key in labels[0]]
        found.sort(key=lambda item: -item[1])
        return found

    def items(self) -> list[tuple[int, np.ndarray]]:
        """Every `(id, vector)`."""
        return self._exact.items()

    def __len__(self) -> int:
        return len(self._exact)


class AdaptiveIndex:
    """Exact while it holds at most `exact_max` vectors, hnswlib from then on."""

    def __init__(self, dimension: int, *, exact_max: int = DEFAULT_EXACT_MAX,
                 m: int = DEFAULT_HNSW_M, ef: int = DEFAULT_HNSW_EF, seed: int = 100) -> None:
        self.dimension = dimension
        self.exact_max = exact_max
        self._hnsw_options = {"m": m, "ef": ef, "seed": seed}
        self._index: ExactIndex | HnswIndex = ExactIndex(dimension)

    @property
    def kind(self) -> str:
        """"exact" or "hnsw"."""
        return "exact" if isinstance(self._index, ExactIndex) else "hnsw"

    def add(self, key: int, vector: np.ndarray) -> None:
        self._index.add(key, vector)
        if isinstance(self._index, ExactIndex) and len(self._index) > self.exact_max:
            self._promote()

    def _promote(self) -> None:
        items = self._index.items()
        graph = HnswIndex(self.dimension, capacity=2 * len(items), **self._hnsw_options)
        graph.add_many([key for key, _ in items], np.stack([vector for _, vector in items]))
        self._index = graph

    def remove(self, key: int) -> None:
        self._index.remove(key)

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        return self._index.search(query, k)

    def __len__(self) -> int:
        return len(self._index)
