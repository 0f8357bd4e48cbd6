"""How L2 entries look on the shards: bucket agents, invalidation scopes, entry values.

A bucket (namespace, function, digest of target, policy version and structured arguments) is
one agent of the `l2` namespace, `"<namespace>\x1f<function>\x1f<digest>"` (each part with
the separator escaped), so the scopes `"<namespace>\x1f"` and `"<namespace>\x1f<function>\x1f"`
name every bucket of a namespace or of a function (`CacheShard.invalidate_scope`).

An entry's value is a vector value (`cluster.vectors`: the model id and vector a shard
indexes) whose payload is msgpack `[PAYLOAD_FORMAT, namespace, function, digest, texts,
answer, created_at]`, the answer in RTFS's canonical plain form; its task is the tier-0 key of
its texts.
"""

from __future__ import annotations

import functools

import msgpack

from cluster.vectors import pack_vector_value, unpack_vector_value
from cluster.wire import SCOPE_SEPARATOR
from delegation.l2.keys import BucketKey
from delegation.l2.store import L2Entry
from rtfs.canonical import plain_to_value, value_to_plain

PAYLOAD_FORMAT = 1


def _escape(part: str) -> str:
    """`part` without the scope separator (injective: backslashes are escaped first)."""
    return part.replace("\\", "\\\\").replace(SCOPE_SEPARATOR, "\\x1f")


def namespace_scope(namespace: str) -> str:
    """The scope of every bucket of `namespace`."""
    return _escape(namespace) + SCOPE_SEPARATOR


def function_scope(namespace: str, function: str) -> str:
    """The scope of every bucket of `function` in `namespace`."""
    return namespace_scope(namespace) + _escape(function) + SCOPE_SEPARATOR


@functools.lru_cache(maxsize=16_384)  # asked on every lookup; buckets repeat
def bucket_agent(bucket: BucketKey) -> str:
    """The shards' agent name of a bucket (its placement key)."""
    return function_scope(bucket.namespace, bucket.function) + _escape(bucket.digest)


def encode_entry(entry: L2Entry) -> bytes:
    """An entry as a value of the `l2` namespace (vector and model id readable by a shard).

    Raises:
        TypeError: the answer has no canonical encoding.
    """
    b = entry.bucket
    payload = msgpack.packb([PAYLOAD_FORMAT, b.namespace, b.function, b.digest,
                             list(entry.texts), value_to_plain(entry.value),
                             float(entry.created_at)], use_bin_type=True)
    vector = entry.vector if entry.model_id is not None else None
    return pack_vector_value(entry.model_id, vector, payload)


def decode_entry(texts_key: str, value: bytes) -> L2Entry:
    """Inverse of `encode_entry` for the entry stored under `texts_key`.

    Raises:
        ValueError, TypeError, ClusterError (a `WireError`): not an entry this version reads.
    """
    model_id, vector, payload = unpack_vector_value(value)
    fmt, namespace, function, digest, texts, plain, created_at = msgpack.unpackb(payload,
                                                                                 raw=False)
    if fmt != PAYLOAD_FORMAT:
        raise ValueError(f"payload format {fmt!r}")
    strings = (namespace, function, digest)
    if not all(isinstance(s, str) for s in strings) or not isinstance(texts, list) or not all(
            isinstance(t, str) for t in texts):
        raise TypeError("malformed entry key")
    if not isinstance(created_at, (int, float)) or isinstance(created_at, bool):
        raise TypeError("created_at must be a number")
    return L2Entry(BucketKey(namespace, function, digest), texts_key, tuple(texts),
                   plain_to_value(plain), model_id, vector, float(created_at))
