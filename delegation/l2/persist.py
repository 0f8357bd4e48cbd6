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

import msgpack
import numpy as np

from delegation.l2.errors import CacheStateError
from delegation.l2.keys import BucketKey
from delegation.l2.store import L2Entry, LocalL2Store
from rtfs.canonical import plain_to_value, value_to_plain
from storage import atomic_write

FILE_FORMAT = 1
FILE_KIND = "rtfs-l2-entries"


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
    try:
        data = msgpack.packb([FILE_FORMAT, FILE_KIND, rows], use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as e:
        raise CacheStateError(str(path), f"cannot encode: {e}") from e
    atomic_write(Path(path), data)
    return len(rows)


def load_store(store: LocalL2Store, path: str | Path, *,
               wall_clock: Callable[[], float] = time.time) -> int:
    """Restore entries written by `save_store` (a missing file restores nothing); return how
    many are live.

    Raises:
        CacheStateError: the file is not an L2 entries file.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return 0
    except OSError as e:
        raise CacheStateError(str(path), f"cannot read: {e.strerror or e}") from e
    now, restored = wall_clock(), 0
    for entry in _decode(data, str(path)):
        remaining = store.ttl_s - max(0.0, now - entry.created_at)
        if remaining > 0:
            store.restore(entry, remaining)
            restored += 1
    return restored


def _decode(data: bytes, path: str) -> list[L2Entry]:
    try:
        fmt, kind, rows = msgpack.unpackb(data, raw=False)
        if (fmt, kind) != (FILE_FORMAT, FILE_KIND):
            raise ValueError(f"not a {FILE_KIND} file of format {FILE_FORMAT}")
        return [_entry(row) for row in rows]
    except Exception as e:  # any malformed content is one clear error naming the file
        raise CacheStateError(path, f"corrupt L2 entries file: {e}") from e


def _entry(row: Any) -> L2Entry:
    namespace, function, digest, texts_key, texts, value, model_id, vector, created_at = row
    strings = (namespace, function, digest, texts_key)
    if not all(isinstance(x, str) for x in strings) or not all(isinstance(t, str)
                                                               for t in texts):
        raise TypeError("malformed entry key")
    array = np.frombuffer(vector, dtype=np.float32).copy() if vector is not None else None
    return L2Entry(BucketKey(namespace, function, digest), texts_key, tuple(texts),
                   plain_to_value(value), model_id, array, float(created_at))
