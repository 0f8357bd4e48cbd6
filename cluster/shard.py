"""`CacheShard`: one partition of the fleet's shared caches, as a plain class (no Ray).

A shard holds versioned entries under `(namespace, agent, task)` for the namespaces of
`cluster.wire.NAMESPACES` (`l1` plans, `outcomes`, and the reserved `l2`/`l3`). It does not
look inside values: a value is opaque bytes the client encoded. Writes are ordered by their
stamp (writer's wall-clock version, then writer id): the last writer wins, so a retried or
replayed write changes nothing (idempotent), and two replicas that saw the same writes in
any order hold the same entry. An `invalidate` leaves a tombstone, an `invalidate_agent` a
floor under which older writes of that agent are ignored, so a late replica copy cannot bring
a removed entry back.

Entries expire at their `expires_at` (wall-clock epoch seconds set by the writer, read on
the injected `clock`); the shard holds at most `max_entries` records and evicts the least
recently used (an expired one first); a namespace may have a capacity of its own
(`namespace_max`, e.g. `l2`, whose records are large), evicting that namespace's least
recently used first. `handle(request_bytes) -> reply_bytes` serves the wire format; the actor
module calls nothing else on the hot path.

In a vector namespace (`cluster.vectors`: `l2`) the shard also indexes each value's embedding
per (agent, model id), so `nearest` answers a semantic lookup inside one agent (an L2 bucket)
in one request. An agent name is a path of scopes separated by `SCOPE_SEPARATOR`
(`"ns\x1ffunction\x1fdigest"` for L2): `invalidate_scope` removes every agent under a
scope and leaves a floor there, as `invalidate_agent` does for one agent.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import xxhash

from cluster.errors import WireError
from cluster.shardops import HANDLERS, Dump, parse_dump
from cluster.topology import Placement
from cluster.vectors import VECTOR_NAMESPACES, VectorTable
from cluster.wire import (
    FAILED,
    NAMESPACES,
    OK,
    SCOPE_SEPARATOR,
    Entry,
    Stamp,
    as_list,
    as_str,
    decode_request,
    encode_reply,
)

__all__ = ["CacheShard", "ShardStats", "parse_dump"]  # parse_dump: where callers found it

DEFAULT_MAX_ENTRIES = 200_000
PURGE_EVERY_S = 1.0  # a full shard scans for expired entries at most this often

Key = tuple[str, str, str]  # (namespace, agent, task)


@dataclass(frozen=True, slots=True)
class ShardStats:
    """Counters of one shard since its process started (a restart starts them again)."""

    name: str
    entries: int
    hits: int
    misses: int
    evictions: int
    expirations: int
    tombstones: int

    def to_list(self) -> list[Any]:
        return [self.name, self.entries, self.hits, self.misses, self.evictions,
                self.expirations, self.tombstones]

    @classmethod
    def from_list(cls, data: Any) -> ShardStats:
        """Inverse of `to_list`; raises `WireError` if malformed."""
        name, *counts = as_list(data, "stats", 7)
        if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts):
            raise WireError("stats", "counters must be non-negative integers")
        return cls(as_str(name, "shard name"), *counts)


class CacheShard:
    """Namespaced, versioned, TTL + LRU entries; thread-safe.

    Args:
        name: the shard's name (its actor name in a fleet).
        max_entries: capacity in records (values and tombstones).
        clock: wall clock, epoch seconds (entries expire at the `expires_at` writers set).
        namespace_max: capacity of single namespaces, within `max_entries`.
    """

    def __init__(self, name: str, *, max_entries: int = DEFAULT_MAX_ENTRIES,
                 clock: Callable[[], float] = time.time,
                 namespace_max: Mapping[str, int] | None = None) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, not {max_entries}")
        for ns, cap in (namespace_max or {}).items():
            if ns not in NAMESPACES or cap < 1:
                raise ValueError(f"namespace_max: {ns!r} = {cap} (a namespace, >= 1)")
        self.name = name
        self.max_entries = max_entries
        self.namespace_max = dict(namespace_max or {})
        self._clock = clock
        self._lock = threading.Lock()
        self._data: OrderedDict[Key, Entry] = OrderedDict()  # least recently used first
        self._ns_order: dict[str, OrderedDict[Key, None]] = {
            ns: OrderedDict() for ns in self.namespace_max}  # the same, per capped namespace
        self._vectors = VectorTable()
        self._evicted: list[Key] | None = None  # collects evictions while a put reports them
        self._tasks: dict[tuple[str, str], set[str]] = {}
        self._floors: dict[tuple[str, str], Stamp] = {}
        self._scope_floors: dict[tuple[str, str], Stamp] = {}
        self._tombstones = 0
        self._hits = self._misses = self._evictions = self._expirations = 0
        self._next_purge = 0.0

    # --- reads ----------------------------------------------------------------------------

    def get_many(self, ns: str, keys: Iterable[tuple[str, str]]) -> list[Entry | None]:
        """The live value entry of each `(agent, task)`, or None."""
        now = self._clock()
        with self._lock:
            out = [self._live((ns, agent, task), now) for agent, task in keys]
            found = sum(e is not None for e in out)
            self._hits += found
            self._misses += len(out) - found
            return out

    def get_agents(self, ns: str, agents: Iterable[str]) -> list[list[Entry]]:
        """Every live value entry of each agent (a lookup per agent: a hit if it has any)."""
        now = self._clock()
        out = []
        with self._lock:
            for agent in agents:
                tasks = sorted(self._tasks.get((ns, agent), ()))
                live = [e for t in tasks if (e := self._live((ns, agent, t), now)) is not None]
                self._hits += bool(live)
                self._misses += not live
                out.append(live)
        return out

    def _live(self, key: Key, now: float) -> Entry | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry.stamp.expires_at <= now:
            self._remove(key)
            self._expirations += entry.value is not None
            return None
        if entry.value is None:
            return None
        self._data.move_to_end(key)
        order = self._ns_order.get(key[0])
        if order is not None:
            order.move_to_end(key)
        return entry

    def nearest(self, ns: str, agent: str, task: str | None, model_id: str,
                vector: np.ndarray, k: int) -> tuple[Entry | None, list[tuple[Entry, float]]]:
        """One semantic lookup in one agent: the live value of `(agent, task)` if there is
        one, else up to `k` live values of `agent` embedded by `model_id`, nearest to `vector`
        first, with their cosines (a lookup: a hit if it finds anything)."""
        now = self._clock()
        with self._lock:
            exact = self._live((ns, agent, task), now) if task is not None else None
            found: list[tuple[Entry, float]] = []
            if exact is None:
                for near_task, cosine in self._vectors.nearest(ns, agent, model_id, vector, k):
                    entry = self._live((ns, agent, near_task), now)
                    if entry is not None:
                        found.append((entry, cosine))
            hit = exact is not None or bool(found)
            self._hits += hit
            self._misses += not hit
            return exact, found

    def touch(self, ns: str, keys: Iterable[tuple[str, str]]) -> int:
        """Mark live values as just used (a replica learns what its peer served, so both
        evict alike); how many were live. Not a lookup: hits and misses do not change."""
        now = self._clock()
        with self._lock:
            return sum(self._live((ns, agent, task), now) is not None for agent, task in keys)

    def key_hashes(self, ns: str) -> list[int]:
        """xxh3_64 of `agent NUL task` of every live value in `ns` (a client counts the
        distinct entries of a fleet whose replicas hold copies)."""
        now = self._clock()
        with self._lock:
            return [xxhash.xxh3_64_intdigest(f"{k[1]}\x00{k[2]}".encode())
                    for k, e in self._data.items()
                    if k[0] == ns and e.value is not None and e.stamp.expires_at > now]

    # --- writes ---------------------------------------------------------------------------

    def put_many(self, ns: str, entries: Iterable[Entry],
                 evicted: list[tuple[str, str]] | None = None) -> int:
        """Apply writes (values or tombstones) newer than what is held; how many applied.
        `evicted` (if given) gets the `(agent, task)` of the values of `ns` evicted meanwhile."""
        now = self._clock()
        with self._lock:
            self._evicted = [] if evicted is not None else None
            try:
                return sum(self._apply(ns, entry, now) for entry in entries)
            finally:
                if evicted is not None and self._evicted is not None:
                    evicted.extend((k[1], k[2]) for k in self._evicted if k[0] == ns)
                self._evicted = None

    def _apply(self, ns: str, entry: Entry, now: float) -> bool:
        if entry.stamp.expires_at <= now:
            return False
        floor = self._floors.get((ns, entry.agent))
        if floor is not None and not entry.stamp.newer_than(floor):
            return False
        if self._scope_floors and self._under_scope_floor(ns, entry.agent, entry.stamp):
            return False
        key = (ns, entry.agent, entry.task)
        held = self._data.get(key)
        if held is not None and not entry.stamp.newer_than(held.stamp):
            return False
        if held is not None:
            self._remove(key)
        self._store(key, entry, now)
        return True

    def _under_scope_floor(self, ns: str, agent: str, stamp: Stamp) -> bool:
        end = agent.find(SCOPE_SEPARATOR)
        while end >= 0:
            floor = self._scope_floors.get((ns, agent[: end + 1]))
            if floor is not None and not stamp.newer_than(floor):
                return True
            end = agent.find(SCOPE_SEPARATOR, end + 1)
        return False

    def _store(self, key: Key, entry: Entry, now: float) -> None:
        full = len(self._data) >= self.max_entries
        order = self._ns_order.get(key[0])
        if order is not None:
            full = full or len(order) >= self.namespace_max[key[0]]
        if full and now >= self._next_purge:
            self._next_purge = now + PURGE_EVERY_S
            self._purge(now)
        while order is not None and len(order) >= self.namespace_max[key[0]]:
            self._evict(next(iter(order)))
        while len(self._data) >= self.max_entries:
            self._evict(next(iter(self._data)))
        self._data[key] = entry
        if order is not None:
            order[key] = None
        self._tasks.setdefault(key[:2], set()).add(key[2])
        self._tombstones += entry.value is None
        if entry.value is not None and key[0] in VECTOR_NAMESPACES:
            self._vectors.add(key, entry.value)

    def _evict(self, key: Key) -> None:
        if self._data[key].value is not None:
            self._evictions += 1
            if self._evicted is not None:
                self._evicted.append(key)
        self._remove(key)

    def _remove(self, key: Key) -> None:
        entry = self._data.pop(key)
        self._tombstones -= entry.value is None
        order = self._ns_order.get(key[0])
        if order is not None:
            del order[key]
        if key[0] in VECTOR_NAMESPACES:
            self._vectors.remove(key)
        tasks = self._tasks[key[:2]]
        tasks.discard(key[2])
        if not tasks:
            del self._tasks[key[:2]]

    def _purge(self, now: float) -> None:
        dead = [k for k, e in self._data.items() if e.stamp.expires_at <= now]
        for key in dead:
            self._expirations += self._data[key].value is not None
            self._remove(key)
        for floors in (self._floors, self._scope_floors):
            for floor_key in [k for k, s in floors.items() if s.expires_at <= now]:
                del floors[floor_key]

    def invalidate(self, ns: str, agent: str, task: str, stamp: Stamp) -> bool:
        """Leave a tombstone for `(agent, task)`; whether a live value was there."""
        now = self._clock()
        key = (ns, agent, task)
        with self._lock:
            held = self._live(key, now)
            expires = max(stamp.expires_at, held.stamp.expires_at if held else 0.0)
            tomb = Entry(agent, task, Stamp(stamp.version, stamp.writer, expires), None)
            return self._apply(ns, tomb, now) and held is not None

    def invalidate_agent(self, ns: str, agent: str, stamp: Stamp) -> int:
        """Drop every value of `agent` older than `stamp` and refuse older ones from now on
        (until `stamp.expires_at`); how many live values were dropped."""
        now = self._clock()
        with self._lock:
            floor = self._floors.get((ns, agent))
            if floor is None or stamp.newer_than(floor):
                self._floors[(ns, agent)] = stamp
            removed = 0
            for task in sorted(self._tasks.get((ns, agent), ())):
                key = (ns, agent, task)
                held = self._data[key]
                if stamp.newer_than(held.stamp):
                    removed += held.value is not None and held.stamp.expires_at > now
                    self._remove(key)
            return removed

    def invalidate_scope(self, ns: str, scope: str, stamp: Stamp) -> list[tuple[str, str]]:
        """Drop every value older than `stamp` of every agent whose name starts with `scope`
        (a scope ends with `SCOPE_SEPARATOR`) and refuse older ones from now on (until
        `stamp.expires_at`); the `(agent, task)` of the live values dropped."""
        if not scope.endswith(SCOPE_SEPARATOR):
            raise ValueError(f"a scope ends with {SCOPE_SEPARATOR!r}: {scope!r}")
        now = self._clock()
        with self._lock:
            floor = self._scope_floors.get((ns, scope))
            if floor is None or stamp.newer_than(floor):
                self._scope_floors[(ns, scope)] = stamp
            dropped = []
            agents = [a for (n, a) in self._tasks if n == ns and a.startswith(scope)]
            for agent in agents:
                for task in sorted(self._tasks.get((ns, agent), ())):
                    key = (ns, agent, task)
                    held = self._data[key]
                    if stamp.newer_than(held.stamp):
                        if held.value is not None and held.stamp.expires_at > now:
                            dropped.append((agent, task))
                        self._remove(key)
            return dropped

    def clear(self) -> int:
        """Drop every record and floor (an operator's reset); how many live values went."""
        with self._lock:
            values = len(self._data) - self._tombstones
            self._data.clear()
            for order in self._ns_order.values():
                order.clear()
            self._vectors.clear()
            self._tasks.clear()
            self._floors.clear()
            self._scope_floors.clear()
            self._tombstones = 0
            return values

    # --- replicas -------------------------------------------------------------------------

    def dump_for(self, shard: str, placement: Placement) -> Dump:
        """Every record (values, tombstones) and floor whose agent `shard` is a replica of,
        and every scope floor (a scope spans agents of every shard)."""
        now = self._clock()
        with self._lock:
            entries = [(key[0], e) for key, e in self._data.items()
                       if e.stamp.expires_at > now and placement.holds(shard, e.agent)]
            floors = [(ns, agent, s) for (ns, agent), s in self._floors.items()
                      if s.expires_at > now and placement.holds(shard, agent)]
            scopes = [(ns, scope, s) for (ns, scope), s in self._scope_floors.items()
                      if s.expires_at > now]
        return entries, floors, scopes

    def load(self, entries: Iterable[tuple[str, Entry]],
             floors: Iterable[tuple[str, str, Stamp]] = (),
             scope_floors: Iterable[tuple[str, str, Stamp]] = ()) -> int:
        """Merge records from a replica (last writer wins); how many were applied."""
        for ns, scope, stamp in scope_floors:
            self.invalidate_scope(ns, scope, stamp)
        for ns, agent, stamp in floors:
            self.invalidate_agent(ns, agent, stamp)
        now = self._clock()
        with self._lock:
            return sum(self._apply(ns, entry, now) for ns, entry in entries)

    # --- stats ----------------------------------------------------------------------------

    def stats(self) -> ShardStats:
        """A consistent snapshot of the counters (`entries`: values, not tombstones)."""
        with self._lock:
            return ShardStats(self.name, len(self._data) - self._tombstones, self._hits,
                              self._misses, self._evictions, self._expirations,
                              self._tombstones)

    # --- the wire -------------------------------------------------------------------------

    def handle(self, request: bytes) -> bytes:
        """Serve one request of the wire format; never raises for a malformed request."""
        try:
            ops = decode_request(request)
        except WireError as err:
            return encode_reply([(FAILED, str(err))])
        results: list[tuple[int, Any]] = []
        for op in ops:
            try:
                results.append((OK, self._dispatch(op)))
            except (WireError, ValueError, TypeError, KeyError) as err:
                results.append((FAILED, f"{op[0]}: {err}"))
        return encode_reply(results)

    def _dispatch(self, op: list[Any]) -> Any:
        name, args = op[0], op[1:]
        handler = HANDLERS.get(name)
        if handler is None:
            raise WireError("request", f"unknown op {name!r}")
        return handler(self, args)
