"""Where L2 entries live: the `L2Store` protocol and the in-process `LocalL2Store`.

The store knows buckets, texts and vectors, not meaning: the `SemanticCache` in front of it
embeds, guards and applies the calibrated threshold. A store is the part a fleet replaces:
a sharded implementation (entries on the cluster's `l2` shards) implements the same protocol
and runs the same conformance suite, `delegation.l2.testing.L2StoreTests`. The cache asks a
store once per lookup (`find`: the exact entry, else the nearest ones), so a store whose
entries are a round trip away answers a lookup in one.

`LocalL2Store` keeps entries in memory with a TTL on an injected monotonic timer and a bound
on their number (least recently used first). Its vectors sit in one `AdaptiveIndex` per
(bucket, model id): exact while small, hnswlib beyond. It is private to its process
(`shared = False`).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from delegation.l2.index import DEFAULT_EXACT_MAX, AdaptiveIndex
from delegation.l2.keys import BucketKey


@dataclass(frozen=True, slots=True, eq=False)
class L2Entry:
    """One cached model result.

    Attributes:
        bucket: the call's key without its free text.
        texts_key: the tier-0 key of its normalised free texts.
        texts: the free texts as given (the guard reads them).
        value: the result.
        model_id: the embedder of `vector` (None without a vector).
        vector: the embedding of the single free text, or None (no or several texts).
        created_at: wall-clock epoch seconds.
        private: a sensitive call's answer: kept in this process only (never saved).
    """

    bucket: BucketKey
    texts_key: str
    texts: tuple[str, ...]
    value: Any
    model_id: str | None = None
    vector: np.ndarray | None = None
    created_at: float = 0.0
    private: bool = False


@dataclass(frozen=True, slots=True)
class L2Found:
    """What `L2Store.find` found: the exact entry, or (without one) the nearest entries
    with their exact cosines, most similar first."""

    exact: L2Entry | None
    nearest: list[tuple[L2Entry, float]]


NOTHING_FOUND = L2Found(None, [])


@dataclass(frozen=True, slots=True)
class StoreStats:
    """Counters of a store since it was made, and its size."""

    entries: int
    puts: int
    evictions: int
    expirations: int
    invalidations: int


class L2Store(Protocol):
    """Storage for L2 entries, keyed by bucket and text.

    Attributes:
        shared: True when other processes, tenants or nodes can read what is put here
            (sensitive calls are never stored in such a store).
    """

    shared: bool

    def get_exact(self, bucket: BucketKey, texts_key: str) -> L2Entry | None:
        """The live entry with exactly these normalised texts in `bucket`, or None."""
        ...

    def nearest(self, bucket: BucketKey, model_id: str, vector: np.ndarray,
                k: int) -> list[tuple[L2Entry, float]]:
        """Up to `k` live entries of `bucket` embedded by `model_id`, with their exact cosine
        to `vector`, most similar first (an approximate index may miss some)."""
        ...

    def find(self, bucket: BucketKey, texts_key: str, model_id: str,
             query: Callable[[], np.ndarray] | None, k: int) -> L2Found:
        """One lookup: the live entry with exactly these texts in `bucket`; without one, and
        when `query` is given, `nearest(bucket, model_id, query(), k)`. `query` is called at
        most once, and only when the store may need the vector (a store a round trip away
        calls it before asking, so that one request answers both)."""
        ...

    def put(self, entry: L2Entry) -> None:
        """Store `entry`, replacing the one with the same bucket and texts; may evict."""
        ...

    def invalidate_function(self, namespace: str, function: str) -> int:
        """Drop every entry of `function` in `namespace`; return how many."""
        ...

    def invalidate_namespace(self, namespace: str) -> int:
        """Drop every entry of `namespace`; return how many."""
        ...

    def stats(self) -> StoreStats:
        """A snapshot of the counters."""
        ...

    def __len__(self) -> int: ...


class LocalL2Store:
    """In-memory `L2Store` with TTL and LRU bound; thread-safe (one lock).

    Args:
        max_entries: capacity; the least recently used entry goes first.
        ttl_s: lifetime of an entry from its `put`, on `timer`.
        timer: monotonic clock (inject a fake one in tests).
        exact_max: vectors per (bucket, model) kept in an exact index before hnswlib.
    """

    shared = False

    def __init__(self, max_entries: int = 10_000, ttl_s: float = 3600.0, *,
                 timer: Callable[[], float] = time.monotonic,
                 exact_max: int = DEFAULT_EXACT_MAX) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, not {max_entries}")
        if ttl_s < 0:
            raise ValueError(f"ttl_s must be >= 0, not {ttl_s}")
        self.max_entries = max_entries
        self.ttl_s = float(ttl_s)
        self.exact_max = exact_max
        self._timer = timer
        self._lock = threading.Lock()
        self._ids = itertools.count(1)  # never reused: hnswlib cannot revive a deleted id
        self._entries: OrderedDict[int, tuple[L2Entry, float]] = OrderedDict()
        self._exact: dict[tuple[BucketKey, str], int] = {}
        self._indexes: dict[tuple[BucketKey, str], AdaptiveIndex] = {}
        self._buckets: dict[BucketKey, set[int]] = {}
        self._puts = self._evictions = self._expirations = self._invalidations = 0

    def get_exact(self, bucket: BucketKey, texts_key: str) -> L2Entry | None:
        with self._lock:
            entry_id = self._exact.get((bucket, texts_key))
            return self._live(entry_id) if entry_id is not None else None

    def nearest(self, bucket: BucketKey, model_id: str, vector: np.ndarray,
                k: int) -> list[tuple[L2Entry, float]]:
        with self._lock:
            index = self._indexes.get((bucket, model_id))
            if index is None:
                return []
            found = []
            for entry_id, cosine in index.search(vector, k):
                entry = self._live(entry_id)
                if entry is not None:
                    found.append((entry, cosine))
            return found

    def find(self, bucket: BucketKey, texts_key: str, model_id: str,
             query: Callable[[], np.ndarray] | None, k: int) -> L2Found:
        exact = self.get_exact(bucket, texts_key)
        if exact is not None or query is None:
            return L2Found(exact, [])
        return L2Found(None, self.nearest(bucket, model_id, query(), k))

    def _live(self, entry_id: int) -> L2Entry | None:
        entry, expires_at = self._entries[entry_id]
        if expires_at <= self._timer():
            self._remove(entry_id)
            self._expirations += 1
            return None
        self._entries.move_to_end(entry_id)
        return entry

    def put(self, entry: L2Entry) -> None:
        with self._lock:
            self._puts += 1
            old = self._exact.get((entry.bucket, entry.texts_key))
            if old is not None:
                self._remove(old)
            while len(self._entries) >= self.max_entries:
                self._remove(next(iter(self._entries)))
                self._evictions += 1
            entry_id = next(self._ids)
            self._entries[entry_id] = (entry, self._timer() + self.ttl_s)
            self._exact[(entry.bucket, entry.texts_key)] = entry_id
            self._buckets.setdefault(entry.bucket, set()).add(entry_id)
            if entry.vector is not None and entry.model_id is not None:
                self._index(entry.bucket, entry.model_id, len(entry.vector)).add(
                    entry_id, entry.vector)

    def _index(self, bucket: BucketKey, model_id: str, dimension: int) -> AdaptiveIndex:
        index = self._indexes.get((bucket, model_id))
        if index is None:
            index = AdaptiveIndex(dimension, exact_max=self.exact_max)
            self._indexes[(bucket, model_id)] = index
        return index

    def _remove(self, entry_id: int) -> None:
        entry, _ = self._entries.pop(entry_id)
        del self._exact[(entry.bucket, entry.texts_key)]
        ids = self._buckets[entry.bucket]
        ids.discard(entry_id)
        if not ids:
            del self._buckets[entry.bucket]
        if entry.model_id is not None and entry.vector is not None:
            index = self._indexes[(entry.bucket, entry.model_id)]
            index.remove(entry_id)
            if not len(index):
                del self._indexes[(entry.bucket, entry.model_id)]

    def invalidate_function(self, namespace: str, function: str) -> int:
        return self._invalidate(lambda b: b.namespace == namespace and b.function == function)

    def invalidate_namespace(self, namespace: str) -> int:
        return self._invalidate(lambda b: b.namespace == namespace)

    def _invalidate(self, matches: Callable[[BucketKey], bool]) -> int:
        with self._lock:
            doomed = [i for b, ids in self._buckets.items() if matches(b) for i in ids]
            for entry_id in doomed:
                self._remove(entry_id)
            self._invalidations += len(doomed)
            return len(doomed)

    def purge_expired(self) -> int:
        """Drop every expired entry now; return how many."""
        now = self._timer()
        with self._lock:
            dead = [i for i, (_, expires_at) in self._entries.items() if expires_at <= now]
            for entry_id in dead:
                self._remove(entry_id)
            self._expirations += len(dead)
            return len(dead)

    def snapshot(self) -> list[tuple[L2Entry, float]]:
        """Every live entry with the seconds it has left, least recently used first."""
        now = self._timer()
        with self._lock:
            return [(entry, expires_at - now) for entry, expires_at in self._entries.values()
                    if expires_at > now]

    def restore(self, entry: L2Entry, remaining_s: float) -> None:
        """Put `entry` with `remaining_s` seconds to live (loading saved entries)."""
        if remaining_s <= 0:
            return
        self.put(entry)
        with self._lock:
            entry_id = self._exact[(entry.bucket, entry.texts_key)]
            self._entries[entry_id] = (entry, self._timer() + min(remaining_s, self.ttl_s))
            self._puts -= 1  # a restore is not a put

    def index_kinds(self) -> dict[tuple[BucketKey, str], str]:
        """Which index ("exact" or "hnsw") each (bucket, model) uses now."""
        with self._lock:
            return {key: index.kind for key, index in self._indexes.items()}

    def stats(self) -> StoreStats:
        with self._lock:
            return StoreStats(len(self._entries), self._puts, self._evictions,
                              self._expirations, self._invalidations)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
