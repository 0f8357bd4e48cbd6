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
recently used (an expired one first). `handle(request_bytes) -> reply_bytes` serves the wire
format; the actor module calls nothing else on the hot path.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from cluster.errors import WireError
from cluster.topology import Placement, Topology
from cluster.wire import (
    FAILED,
    OK,
    Entry,
    Stamp,
    as_list,
    as_namespace,
    as_str,
    decode_request,
    encode_reply,
    entries_from,
    stamp_from,
)

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
    """

    def __init__(self, name: str, *, max_entries: int = DEFAULT_MAX_ENTRIES,
                 clock: Callable[[], float] = time.time) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, not {max_entries}")
        self.name = name
        self.max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._data: OrderedDict[Key, Entry] = OrderedDict()  # least recently used first
        self._tasks: dict[tuple[str, str], set[str]] = {}
        self._floors: dict[tuple[str, str], Stamp] = {}
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
        return entry

    # --- writes ---------------------------------------------------------------------------

    def put_many(self, ns: str, entries: Iterable[Entry]) -> int:
        """Apply writes (values or tombstones) newer than what is held; how many applied."""
        now = self._clock()
        with self._lock:
            return sum(self._apply(ns, entry, now) for entry in entries)

    def _apply(self, ns: str, entry: Entry, now: float) -> bool:
        if entry.stamp.expires_at <= now:
            return False
        floor = self._floors.get((ns, entry.agent))
        if floor is not None and not entry.stamp.newer_than(floor):
            return False
        key = (ns, entry.agent, entry.task)
        held = self._data.get(key)
        if held is not None and not entry.stamp.newer_than(held.stamp):
            return False
        if held is not None:
            self._remove(key)
        self._store(key, entry, now)
        return True

    def _store(self, key: Key, entry: Entry, now: float) -> None:
        if len(self._data) >= self.max_entries and now >= self._next_purge:
            self._next_purge = now + PURGE_EVERY_S
            self._purge(now)
        while len(self._data) >= self.max_entries:
            oldest = next(iter(self._data))
            self._evictions += self._data[oldest].value is not None
            self._remove(oldest)
        self._data[key] = entry
        self._tasks.setdefault(key[:2], set()).add(key[2])
        self._tombstones += entry.value is None

    def _remove(self, key: Key) -> None:
        entry = self._data.pop(key)
        self._tombstones -= entry.value is None
        tasks = self._tasks[key[:2]]
        tasks.discard(key[2])
        if not tasks:
            del self._tasks[key[:2]]

    def _purge(self, now: float) -> None:
        dead = [k for k, e in self._data.items() if e.stamp.expires_at <= now]
        for key in dead:
            self._expirations += self._data[key].value is not None
            self._remove(key)
        for agent_key in [k for k, s in self._floors.items() if s.expires_at <= now]:
            del self._floors[agent_key]

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

    def clear(self) -> int:
        """Drop every record and floor (an operator's reset); how many live values went."""
        with self._lock:
            values = len(self._data) - self._tombstones
            self._data.clear()
            self._tasks.clear()
            self._floors.clear()
            self._tombstones = 0
            return values

    # --- replicas -------------------------------------------------------------------------

    def dump_for(self, shard: str, placement: Placement) -> tuple[list[tuple[str, Entry]],
                                                                   list[tuple[str, str, Stamp]]]:
        """Every record (values, tombstones) and floor whose agent `shard` is a replica of."""
        now = self._clock()
        with self._lock:
            entries = [(key[0], e) for key, e in self._data.items()
                       if e.stamp.expires_at > now and placement.holds(shard, e.agent)]
            floors = [(ns, agent, s) for (ns, agent), s in self._floors.items()
                      if s.expires_at > now and placement.holds(shard, agent)]
        return entries, floors

    def load(self, entries: Iterable[tuple[str, Entry]],
             floors: Iterable[tuple[str, str, Stamp]] = ()) -> int:
        """Merge records from a replica (last writer wins); how many were applied."""
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
        handler = _HANDLERS.get(name)
        if handler is None:
            raise WireError("request", f"unknown op {name!r}")
        return handler(self, args)


def _op_get(shard: CacheShard, args: list[Any]) -> Any:
    ns, keys = as_list(args, "get", 2)
    pairs = [tuple(as_str(p, "key") for p in as_list(k, "key", 2)) for k in as_list(keys, "keys")]
    found = shard.get_many(as_namespace(ns), pairs)  # type: ignore[arg-type]
    return [e.to_list() if e is not None else None for e in found]


def _op_agents(shard: CacheShard, args: list[Any]) -> Any:
    ns, agents = as_list(args, "agents", 2)
    names = [as_str(a, "agent") for a in as_list(agents, "agents")]
    return [[e.to_list() for e in live] for live in shard.get_agents(as_namespace(ns), names)]


def _op_put(shard: CacheShard, args: list[Any]) -> Any:
    ns, entries = as_list(args, "put", 2)
    return shard.put_many(as_namespace(ns), entries_from(entries))


def _op_invalidate(shard: CacheShard, args: list[Any]) -> Any:
    ns, agent, task, stamp = as_list(args, "invalidate", 4)
    return shard.invalidate(as_namespace(ns), as_str(agent, "agent"), as_str(task, "task"),
                            stamp_from(stamp))


def _op_invalidate_agent(shard: CacheShard, args: list[Any]) -> Any:
    ns, agent, stamp = as_list(args, "invalidate_agent", 3)
    return shard.invalidate_agent(as_namespace(ns), as_str(agent, "agent"), stamp_from(stamp))


def _op_stats(shard: CacheShard, args: list[Any]) -> Any:
    as_list(args, "stats", 0)
    return shard.stats().to_list()


def _op_dump(shard: CacheShard, args: list[Any]) -> Any:
    target, topology = as_list(args, "dump", 2)
    try:
        placement = Placement(Topology.from_list(topology))
    except (ValueError, TypeError) as err:
        raise WireError("topology", str(err)) from None
    entries, floors = shard.dump_for(as_str(target, "shard"), placement)
    return [[[ns, e.to_list()] for ns, e in entries],
            [[ns, agent, s.to_list()] for ns, agent, s in floors]]


def _op_clear(shard: CacheShard, args: list[Any]) -> Any:
    as_list(args, "clear", 0)
    return shard.clear()


def _op_ping(shard: CacheShard, args: list[Any]) -> Any:
    return shard.name


_HANDLERS: dict[str, Callable[[CacheShard, list[Any]], Any]] = {
    "get": _op_get,
    "agents": _op_agents,
    "put": _op_put,
    "invalidate": _op_invalidate,
    "invalidate_agent": _op_invalidate_agent,
    "stats": _op_stats,
    "dump": _op_dump,
    "ping": _op_ping,
    "clear": _op_clear,
}


def parse_dump(value: Any) -> tuple[list[tuple[str, Entry]], list[tuple[str, str, Stamp]]]:
    """The records and floors of a `dump` result; raises `WireError` if malformed."""
    entries, floors = as_list(value, "dump", 2)
    records = []
    for item in as_list(entries, "dump entries"):
        ns, entry = as_list(item, "dump entry", 2)
        records.append((as_namespace(ns), entries_from([entry])[0]))
    out_floors = []
    for item in as_list(floors, "dump floors"):
        ns, agent, stamp = as_list(item, "floor", 3)
        out_floors.append((as_namespace(ns), as_str(agent, "agent"), stamp_from(stamp)))
    return records, out_floors
