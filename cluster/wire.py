"""The shard wire format: versioned msgpack bytes, one message per batch.

A request is `[WIRE_VERSION, [op, ...]]` and its reply `[WIRE_VERSION, [result, ...]]`, one
result per op in order: `[0, value]` for success, `[1, message]` for an op the shard refused.
A batch travels as one bytes object (Ray moves bytes without pickling their contents, which
is what makes 1000-key batches fast).

Ops (`ns` is a namespace, one of `NAMESPACES`):

    ["get", ns, [[agent, task], ...]]          -> [entry or nil, ...]   live values only
    ["agents", ns, [agent, ...]]               -> [[entry, ...], ...]   per agent, live values
    ["put", ns, [entry, ...]]                  -> number applied (last writer wins)
    ["invalidate", ns, agent, task, stamp]     -> whether a live value was there
    ["invalidate_agent", ns, agent, stamp]     -> how many live values were removed
    ["stats"]                                  -> [name, entries, hits, misses, evictions,
                                                   expirations, tombstones]
    ["dump", shard, topology]                  -> [[ns, entry], ...] + floors + scope
                                                   floors: what `shard` should hold
                                                   (rehydration)
    ["ping"]                                   -> the shard's name
    ["clear"]                                  -> how many live values were dropped

and, for the vector namespace `l2` (values as in `cluster.vectors`) and scoped agents:

    ["nearest", ns, agent, task or nil, model_id, vector, k]
                                               -> [entry or nil, [[entry, cosine], ...]]:
                                                  the live value of (agent, task), else up
                                                  to k of agent's values of model_id nearest
                                                  to vector (float32 bytes)
    ["put_evicted", ns, [entry, ...]]          -> [number applied, [[agent, task], ...]
                                                  evicted from ns meanwhile]
    ["touch", ns, [[agent, task], ...]]        -> how many were live (marked just used)
    ["keys", ns]                               -> [xxh3_64 of "agent NUL task", ...] live
    ["invalidate_scope", ns, scope, stamp]     -> [[agent, task], ...] live values removed
                                                  from every agent starting with scope

An entry is `[agent, task, version, writer, expires_at, value]`: `version` (int, writer's
wall clock in ns) and `writer` order writes (last writer wins; ties by writer id);
`expires_at` is wall-clock epoch seconds; `value` is opaque bytes, or nil for a tombstone.
A stamp is `[version, writer, expires_at]`.

Decoding never trusts its input: anything else raises `WireError` (the client treats an
undecodable reply as a miss; the shard answers an undecodable request with an error).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgpack

from cluster.errors import WireError

WIRE_VERSION = 1
NAMESPACES = ("l1", "outcomes", "l2", "l3")
"""`l1`: plans; `outcomes`: per-writer outcome totals; `l2`, `l3`: reserved for the semantic
and contextual caches (accepted and stored like the others)."""

OK, FAILED = 0, 1
SCOPE_SEPARATOR = "\x1f"
"""Separates the scopes of an agent's name (`invalidate_scope` removes a scope's agents)."""


@dataclass(frozen=True, slots=True)
class Stamp:
    """Who wrote when: orders writes (last writer wins) and bounds a tombstone's life."""

    version: int
    writer: str
    expires_at: float

    def newer_than(self, other: Stamp) -> bool:
        return (self.version, self.writer) > (other.version, other.writer)

    def to_list(self) -> list[Any]:
        return [self.version, self.writer, self.expires_at]


@dataclass(frozen=True, slots=True)
class Entry:
    """One versioned value (or tombstone, `value is None`) under `(agent, task)`."""

    agent: str
    task: str
    stamp: Stamp
    value: bytes | None

    def to_list(self) -> list[Any]:
        s = self.stamp
        return [self.agent, self.task, s.version, s.writer, s.expires_at, self.value]


# --- validation of decoded values ---------------------------------------------------------

def _fail(what: str, reason: str) -> WireError:
    return WireError(what, reason)


def as_str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise _fail(what, f"expected a string, got {type(value).__name__}")
    return value


def as_int(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _fail(what, f"expected an integer, got {type(value).__name__}")
    return value


def as_float(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(what, f"expected a number, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number):
        raise _fail(what, "expected a finite number")
    return number


def as_list(value: Any, what: str, length: int | None = None) -> list[Any]:
    if not isinstance(value, list):
        raise _fail(what, f"expected an array, got {type(value).__name__}")
    if length is not None and len(value) != length:
        raise _fail(what, f"expected {length} items, got {len(value)}")
    return value


def as_namespace(value: Any) -> str:
    ns = as_str(value, "namespace")
    if ns not in NAMESPACES:
        raise _fail("namespace", f"{ns!r} is not one of {', '.join(NAMESPACES)}")
    return ns


def stamp_from(data: Any) -> Stamp:
    version, writer, expires = as_list(data, "stamp", 3)
    return Stamp(as_int(version, "version"), as_str(writer, "writer"),
                 as_float(expires, "expires_at"))


def entry_from(data: Any) -> Entry:
    agent, task, version, writer, expires, value = as_list(data, "entry", 6)
    if value is not None and not isinstance(value, bytes):
        raise _fail("entry value", f"expected bytes or nil, got {type(value).__name__}")
    return Entry(as_str(agent, "agent"), as_str(task, "task"),
                 Stamp(as_int(version, "version"), as_str(writer, "writer"),
                       as_float(expires, "expires_at")), value)


def entries_from(data: Any, what: str = "entries") -> list[Entry]:
    return [entry_from(item) for item in as_list(data, what)]


# --- messages -----------------------------------------------------------------------------

def _pack(message: Any) -> bytes:
    return msgpack.packb(message, use_bin_type=True)


def _unpack(data: Any, what: str) -> list[Any]:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise _fail(what, f"expected bytes, got {type(data).__name__}")
    try:
        message = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except (ValueError, TypeError, OverflowError, msgpack.UnpackException) as err:
        raise _fail(what, f"not msgpack ({type(err).__name__}: {err})") from None
    version, body = as_list(message, what, 2)
    if version != WIRE_VERSION:
        raise _fail(what, f"wire version {version!r}, this side speaks {WIRE_VERSION}")
    return as_list(body, what)


def encode_request(ops: Sequence[Sequence[Any]]) -> bytes:
    """One batch of ops as request bytes."""
    return _pack([WIRE_VERSION, [list(op) for op in ops]])


def decode_request(data: Any) -> list[list[Any]]:
    """The ops of a request; each is a non-empty array whose first item is a string."""
    ops = _unpack(data, "request")
    for op in ops:
        if not isinstance(op, list) or not op or not isinstance(op[0], str):
            raise _fail("request", "an op is an array starting with its name")
    return ops


def encode_reply(results: Sequence[tuple[int, Any]]) -> bytes:
    """Per-op results (`(OK, value)` or `(FAILED, message)`) as reply bytes."""
    return _pack([WIRE_VERSION, [list(r) for r in results]])


def decode_reply(data: Any, expected: int) -> list[tuple[int, Any]]:
    """The results of a reply to a request of `expected` ops."""
    results = _unpack(data, "reply")
    if len(results) != expected:
        raise _fail("reply", f"{len(results)} results for {expected} ops")
    out = []
    for result in results:
        status, value = as_list(result, "result", 2)
        if status not in (OK, FAILED) or isinstance(status, bool):
            raise _fail("result", f"status {status!r} is neither {OK} nor {FAILED}")
        if status == FAILED:
            value = as_str(value, "error message")
        out.append((status, value))
    return out
