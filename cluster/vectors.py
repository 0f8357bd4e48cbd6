"""Values that carry an embedding, and the shard's nearest-neighbour table over them.

A value in a vector namespace (`VECTOR_NAMESPACES`: `l2`) is msgpack
`[VECTOR_FORMAT, model_id, vector, payload]`: the id of the embedding model (nil without a
vector), the unit vector as little-endian float32 bytes (or nil), and the payload, opaque bytes
the client encoded. A shard reads the first three and never the payload.

`VectorTable` is what a shard keeps beside its records: per (namespace, agent, model id) an
`AdaptiveIndex` (exact while small, hnswlib beyond) over the vectors of the live records. So
a nearest-neighbour query is answered inside one agent's entries and one model's vectors: a
shard never compares vectors of different models, and a vector whose dimension is not its
index's is left out rather than compared. Every cosine it returns is computed exactly from
the stored vector; the client recomputes it anyway from the vector it receives.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import msgpack
import numpy as np

from cluster.errors import WireError
from delegation.l2.config import DEFAULT_EXACT_MAX
from delegation.l2.index import AdaptiveIndex

VECTOR_FORMAT = 1
VECTOR_NAMESPACES = ("l2",)
MAX_DIMENSION = 8192

Key = tuple[str, str, str]  # (namespace, agent, task)
Group = tuple[str, str, str]  # (namespace, agent, model id)


def pack_vector_value(model_id: str | None, vector: np.ndarray | None, payload: bytes) -> bytes:
    """A value of a vector namespace."""
    data = None if vector is None else np.asarray(vector, dtype="<f4").tobytes()
    return msgpack.packb([VECTOR_FORMAT, model_id if vector is not None else None, data,
                          payload], use_bin_type=True)


def unpack_vector_value(value: Any) -> tuple[str | None, np.ndarray | None, bytes]:
    """(model id, vector, payload) of a value of a vector namespace.

    Raises:
        WireError: not such a value (wrong format, types, or a vector of no usable length).
    """
    if not isinstance(value, bytes):
        raise WireError("vector value", f"expected bytes, got {type(value).__name__}")
    try:
        fmt, model_id, data, payload = msgpack.unpackb(value, raw=False)
    except (ValueError, TypeError, msgpack.UnpackException) as err:
        raise WireError("vector value", f"not a vector value ({type(err).__name__})") from None
    if fmt != VECTOR_FORMAT or not isinstance(payload, bytes):
        raise WireError("vector value", f"format {fmt!r} or payload not understood")
    if data is None:
        return None, None, payload
    if not isinstance(model_id, str) or not model_id or not isinstance(data, bytes):
        raise WireError("vector value", "a vector needs a model id and float32 bytes")
    return model_id, vector_from_bytes(data), payload


def vector_from_bytes(data: Any) -> np.ndarray:
    """A float32 vector from its little-endian bytes.

    Raises:
        WireError: not bytes, a length that is not whole float32s, empty, too long, or not
            finite.
    """
    if not isinstance(data, bytes) or not data or len(data) % 4:
        raise WireError("vector", "expected a non-empty whole number of float32s")
    if len(data) // 4 > MAX_DIMENSION:
        raise WireError("vector", f"more than {MAX_DIMENSION} dimensions")
    vector = np.frombuffer(data, dtype="<f4").astype(np.float32)
    if not math.isfinite(float(vector @ vector)):  # any inf or nan makes it so (fast)
        raise WireError("vector", "not finite (or too large)")
    return vector


class VectorTable:
    """The vectors of a shard's live records, indexed per (namespace, agent, model id).

    Not thread-safe: the shard calls it under its own lock.

    Args:
        exact_max: vectors per index kept in an exact index before hnswlib.
    """

    def __init__(self, exact_max: int = DEFAULT_EXACT_MAX) -> None:
        self.exact_max = exact_max
        self._ids = itertools.count(1)  # never reused: hnswlib cannot revive a deleted id
        self._by_key: dict[Key, tuple[int, Group]] = {}
        self._tasks: dict[int, str] = {}
        self._indexes: dict[Group, AdaptiveIndex] = {}

    def add(self, key: Key, value: bytes) -> bool:
        """Index the vector of `value` (stored under `key`); whether it had a usable one."""
        self.remove(key)
        try:
            model_id, vector, _ = unpack_vector_value(value)
        except WireError:
            return False  # stored and served by exact key, never compared
        if model_id is None or vector is None:
            return False
        group = (key[0], key[1], model_id)
        index = self._indexes.get(group)
        if index is None:
            index = self._indexes[group] = AdaptiveIndex(len(vector), exact_max=self.exact_max)
        elif index.dimension != len(vector):
            return False
        entry_id = next(self._ids)
        index.add(entry_id, vector)
        self._by_key[key] = (entry_id, group)
        self._tasks[entry_id] = key[2]
        return True

    def remove(self, key: Key) -> None:
        """Forget `key`'s vector, if it has one."""
        found = self._by_key.pop(key, None)
        if found is None:
            return
        entry_id, group = found
        del self._tasks[entry_id]
        index = self._indexes[group]
        index.remove(entry_id)
        if not len(index):
            del self._indexes[group]

    def nearest(self, ns: str, agent: str, model_id: str, query: np.ndarray,
                k: int) -> list[tuple[str, float]]:
        """Up to `k` (task, cosine) of `agent`'s vectors of `model_id`, most similar first;
        none when the query's dimension is not the index's."""
        index = self._indexes.get((ns, agent, model_id))
        if index is None or index.dimension != len(query) or k <= 0:
            return []
        return [(self._tasks[i], cosine) for i, cosine in index.search(query, k)]

    def clear(self) -> None:
        self._by_key.clear()
        self._tasks.clear()
        self._indexes.clear()

    def __len__(self) -> int:
        return len(self._by_key)
