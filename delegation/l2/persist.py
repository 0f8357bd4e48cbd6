"""Saving a `LocalL2Store` in the state directory, so the next run starts with its answers.

Format: msgpack `[1, "rtfs-l2-entries", rows]`, one row per live entry, least recently used
first: `[namespace, function, digest, texts_key, texts, value, model_id, vector, created_at]`
with the value in RTFS's canonical plain form and the vector as float32 bytes. On load an
entry lives what is left of the store's TTL measured from `created_at` (wall clock), like an
L1 plan. Private entries (sensitive calls) are never written; an answer with no canonical
encoding is skipped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from delegation.l2.errors import CacheStateError
from delegation.l2.keys import BucketKey
from delegation.l2.store import L2Entry, LocalL2Store
from delegation.statefile import StateFile
from rtfs.canonical import plain_to_value, value_to_plain

FILE_FORMAT = 1
FILE_KIND = "rtfs-l2-entries"
_STATE = StateFile(FILE_KIND, FILE_FORMAT, "L2 entries", CacheStateError)


def save_store(store: LocalL2Store, path: str | Path) -> int:
    """Write the store's live, non-private entries atomically; return how many."""
    rows = []
    for entry, _ in store.snapshot():
        if entry.private:
            continue
        try:
            value = value_to_plain(entry.value)
        except TypeError:
            continue
        vector = entry.vector.astype(np.float32).tobytes() if entry.vector is not None else None
        b = entry.bucket
        rows.append([b.namespace, b.function, b.digest, entry.texts_key, list(entry.texts),
                     value, entry.model_id, vector, entry.created_at])
    _STATE.write(path, rows)
    return len(rows)


def load_store(store: LocalL2Store, path: str | Path, *,
               wall_clock: Callable[[], float] = time.time) -> int:
    """Restore entries written by `save_store` (a missing file restores nothing); return how
    many are live.

    Raises:
        CacheStateError: the file is not an L2 entries file.
    """
    entries = _STATE.read(path, _entry)
    if entries is None:
        return 0
    now, restored = wall_clock(), 0
    for entry in entries:
        remaining = store.ttl_s - max(0.0, now - entry.created_at)
        if remaining > 0:
            store.restore(entry, remaining)
            restored += 1
    return restored


def _entry(row: Any) -> L2Entry:
    namespace, function, digest, texts_key, texts, value, model_id, vector, created_at = row
    strings = (namespace, function, digest, texts_key)
    if not all(isinstance(x, str) for x in strings) or not all(isinstance(t, str)
                                                               for t in texts):
        raise TypeError("malformed entry key")
    array = np.frombuffer(vector, dtype=np.float32).copy() if vector is not None else None
    return L2Entry(BucketKey(namespace, function, digest), texts_key, tuple(texts),
                   plain_to_value(value), model_id, array, float(created_at))
