"""`ShardedL2Store`: the fleet's L2 entries behind the `L2Store` protocol (`shared = True`).

**Placement.** A bucket (namespace, function, target, policy version, structured arguments) is
one agent of the shards' `l2` namespace (`cluster.l2codec`), and its entries (task: the tier-0
key of their texts) live on the bucket's replica set. So a lookup is one request to one shard:
`nearest` returns the exact entry, or the bucket's entries of the caller's model nearest to
the query vector, vectors included; the cosine the cache compares with its threshold is
recomputed here from the vector received. The shard's index may be approximate: it can lose
a hit, never make one. A shard never compares vectors of different models
(`cluster.vectors`).

**Near-cache.** Entries this store wrote, fetched or received as candidates are kept (at most
`near_max_entries`, least recently used first). An exact lookup of one of them answers without
a round trip (and without embedding) while it is fresh: `near_ttl_s` from its fetch or flush,
or for as long as it is a write of ours the fleet has not taken yet. A hit returns the same
entry object while the entry is unchanged. Semantic lookups always ask the fleet: one round
trip, only for calls that cost far more (see `delegation.l2.serving`). L2 has no prefetch: a
bucket depends on a call's arguments, known only at the call.

**Writes** (`put`, and the touches that tell a bucket's replicas which entries are used, so
both evict alike) are written behind like L1 plans: every `flush_interval_s` or `flush_rows`,
one request per shard, each row to the first `replication` live shards of its bucket; failed
rows are sent again (idempotent: last writer wins). A lookup of a bucket with writes still
pending flushes first (read your writes). Invalidations go to every shard at once and count
what the fleet removed; a shard that missed one gets it again later (its floor makes older
copies harmless, and travels with rehydration).

**Faults.** A shard that fails or does not answer is walked around (breakers in
`ShardClient`); a lookup no shard answered is a miss, except what the near-cache still holds
(exact, or nearest among its own entries), which serves until the entries' own TTL. Never an
error for the caller.

**Counters** are this store's view: its puts, the evictions its writes caused, the expired
entries it met, what its invalidations removed; `len()` asks every shard for its live keys.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgpack
import numpy as np
import xxhash

from cluster.behind import WriteBehind
from cluster.client import ShardClient
from cluster.errors import ClusterError
from cluster.l2codec import (
    bucket_agent,
    decode_entry,
    encode_entry,
    function_scope,
    namespace_scope,
)
from cluster.wire import FAILED, Entry, Stamp, as_list, entry_from
from delegation.l2.keys import BucketKey
from delegation.l2.store import NOTHING_FOUND, L2Entry, L2Found, StoreStats

NAMESPACE = "l2"
DEFAULT_NEAR_TTL_S = 5.0
DEFAULT_NEAR_MAX_ENTRIES = 1024
DEFAULT_FLUSH_INTERVAL_S = 0.05
DEFAULT_FLUSH_ROWS = 1000
DEFAULT_MAX_PENDING = 20_000

NearKey = tuple[str, str]  # (agent, task)
_NO_ANSWER = object()


@dataclass(slots=True)
class _Near:
    entry: L2Entry
    stamp: Stamp
    expires: float  # on the store's timer
    fresh_until: float  # the fleet's answer stands until then (timer)
    flushed: bool


@dataclass(slots=True)
class _Row:
    """A write waiting for the fleet: a put, a touch, or an invalidation one shard missed."""

    kind: str  # "put" | "touch" | "scope"
    agent: str
    task: str = ""
    wire: list[Any] | None = None  # a put's entry on the wire
    stamp: Stamp | None = None  # a put's or an invalidation's
    scope: str = ""
    shard: str = ""  # an invalidation's one shard


class ShardedL2Store:
    """An `L2Store` over the fleet's cache shards, with a near-cache; thread-safe.

    Args:
        client: the shards (placement, breakers, transport).
        ttl_s: lifetime of an entry from its put.
        near_ttl_s: how long an entry fetched from the fleet answers without asking again.
        near_max_entries: entries kept in the near-cache (least recently used go first).
        flush_interval_s, flush_rows: write-behind: send at most this often, or this many.
        max_pending: rows kept for a fleet that does not answer (the oldest go first).
        writer: this store's writer id (default: a random one).
        timer: monotonic clock; wall_clock: epoch clock (versions and expiry across nodes).
        background: run the flush thread (tests of the bare logic turn it off).
    """

    shared = True

    def __init__(self, client: ShardClient, *, ttl_s: float = 3600.0,
                 near_ttl_s: float = DEFAULT_NEAR_TTL_S,
                 near_max_entries: int = DEFAULT_NEAR_MAX_ENTRIES,
                 flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S,
                 flush_rows: int = DEFAULT_FLUSH_ROWS, max_pending: int = DEFAULT_MAX_PENDING,
                 writer: str | None = None, timer: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time, background: bool = True) -> None:
        if ttl_s < 0 or near_ttl_s < 0 or near_max_entries < 1:
            raise ValueError("ttl_s and near_ttl_s must be >= 0, near_max_entries >= 1")
        self.client = client
        self.ttl_s, self.near_ttl_s = float(ttl_s), float(near_ttl_s)
        self.near_max_entries = near_max_entries
        self.writer = writer or uuid.uuid4().hex[:16]
        self._timer, self._wall = timer, wall_clock
        self._lock = threading.Lock()
        self._near: OrderedDict[NearKey, _Near] = OrderedDict()
        self._unsent: dict[str, int] = {}  # agent -> its puts no shard has taken yet
        self._touching: set[NearKey] = set()  # touches queued
        self._version = 0
        self._puts = self._evictions = self._expirations = self._invalidations = 0
        self.refused_private = self.unencodable = self.bad_values = 0
        self.round_trips = 0  # lookups that asked the fleet
        self.writes: WriteBehind[_Row] = WriteBehind(
            self._send, interval_s=flush_interval_s, batch_rows=flush_rows,
            max_pending=max_pending, on_drop=self._dropped, background=background,
            name="l2-store-flush")

    # --- lookups --------------------------------------------------------------------------

    def get_exact(self, bucket: BucketKey, texts_key: str) -> L2Entry | None:
        """The live entry with exactly these normalised texts in `bucket`, or None."""
        agent = bucket_agent(bucket)
        answered, entry = self._near_answer(agent, texts_key)
        if answered:
            return entry
        reply = self._ask(agent, ["get", NAMESPACE, [[agent, texts_key]]])
        if reply is _NO_ANSWER:
            return self._near_fallback(agent, texts_key)
        try:
            (row,) = as_list(reply, "get", 1)
            wire = entry_from(row) if row is not None else None
        except ClusterError:
            return self._near_fallback(agent, texts_key)
        if wire is None:
            self._forget(agent, texts_key)
            return None
        return self._merge(wire, bucket)

    def nearest(self, bucket: BucketKey, model_id: str, vector: np.ndarray,
                k: int) -> list[tuple[L2Entry, float]]:
        """Up to `k` live entries of `bucket` embedded by `model_id` nearest to `vector`,
        with their exact cosines (one round trip)."""
        return self._lookup(bucket, bucket_agent(bucket), None, model_id, vector, k).nearest

    def find(self, bucket: BucketKey, texts_key: str, model_id: str,
             query: Callable[[], np.ndarray] | None, k: int) -> L2Found:
        """The exact entry from the near-cache if it can answer; else one request to the
        bucket's shard for the exact entry or, with `query`, the nearest ones."""
        agent = bucket_agent(bucket)
        answered, entry = self._near_answer(agent, texts_key)
        if answered:
            return L2Found(entry, [])
        if query is None:
            return L2Found(self.get_exact(bucket, texts_key), [])
        return self._lookup(bucket, agent, texts_key, model_id, query(), k)

    def _lookup(self, bucket: BucketKey, agent: str, texts_key: str | None, model_id: str,
                query: np.ndarray, k: int) -> L2Found:
        vector = np.asarray(query, dtype=np.float32)
        reply = self._ask(agent, ["nearest", NAMESPACE, agent, texts_key, model_id,
                                  vector.astype("<f4").tobytes(), k])
        if reply is _NO_ANSWER:
            return self._near_nearest(agent, texts_key, model_id, vector, k)
        try:
            exact, candidates = as_list(reply, "nearest", 2)
            if exact is not None:
                return L2Found(self._merge(entry_from(exact), bucket), [])
            rows = [entry_from(as_list(c, "candidate", 2)[0])
                    for c in as_list(candidates, "candidates")]
        except ClusterError:
            return self._near_nearest(agent, texts_key, model_id, vector, k)
        if texts_key is not None:
            self._forget(agent, texts_key)
        found = []
        for row in rows:
            entry = self._merge(row, bucket)
            if entry is not None and entry.model_id == model_id and entry.vector is not None \
                    and len(entry.vector) == len(vector):
                found.append((entry, _cosine(entry.vector, vector)))
        found.sort(key=lambda item: -item[1])
        return L2Found(None, found[:k])

    def _ask(self, agent: str, op: list[Any]) -> Any:
        """`op`'s value from the first of `agent`'s live shards that answers (after sending
        this store's pending writes of `agent`), or `_NO_ANSWER`."""
        if self._unsent.get(agent):
            self.writes.flush()
        with self._lock:
            self.round_trips += 1
        for shard in self.client.live_order(agent):
            result = self.client.send({shard: [op]}).get(shard)
            if result is None or isinstance(result, ClusterError):
                continue
            status, value = result[0]
            if status != FAILED:
                return value
        return _NO_ANSWER

    # --- the near-cache -------------------------------------------------------------------

    def _near_answer(self, agent: str, task: str) -> tuple[bool, L2Entry | None]:
        """(whether the near-cache's answer stands, the entry)."""
        now = self._timer()
        with self._lock:
            held = self._near.get((agent, task))
            if held is None:
                return False, None
            if held.expires <= now:
                del self._near[(agent, task)]
                self._expirations += 1
                return False, None
            if held.fresh_until > now or not held.flushed:
                self._near.move_to_end((agent, task))
                touch = self._touch(agent, task)
            else:
                return False, None
        if touch:
            self.writes.add(_Row("touch", agent, task))
        return True, held.entry

    def _near_fallback(self, agent: str, task: str) -> L2Entry | None:
        """No shard answered: what the near-cache knew, until its own TTL."""
        with self._lock:
            held = self._near.get((agent, task))
            return held.entry if held is not None and held.expires > self._timer() else None

    def _near_nearest(self, agent: str, task: str | None, model_id: str, vector: np.ndarray,
                      k: int) -> L2Found:
        """No shard answered: the exact entry or the nearest among the near-cache's own."""
        if task is not None:
            exact = self._near_fallback(agent, task)
            if exact is not None:
                return L2Found(exact, [])
        now = self._timer()
        with self._lock:
            held = [(h.entry, h.entry.vector) for (a, _), h in self._near.items()
                    if a == agent and h.expires > now and h.entry.model_id == model_id]
        scored = [(e, _cosine(v, vector)) for e, v in held
                  if v is not None and len(v) == len(vector)]
        if not scored:
            return NOTHING_FOUND
        scored.sort(key=lambda item: -item[1])
        return L2Found(None, scored[:k])

    def _merge(self, wire: Entry, bucket: BucketKey) -> L2Entry | None:
        """A fleet entry into the near-cache (the held object kept if unchanged); None if it
        expired on this node's clock or cannot be read."""
        if wire.value is None:
            return None
        wall, now = self._wall(), self._timer()
        key = (wire.agent, wire.task)
        entry: L2Entry | None = None
        with self._lock:
            self._version = max(self._version, wire.stamp.version)
            held = self._near.get(key)
            if wire.stamp.expires_at <= wall:
                self._expirations += 1
                if held is not None and held.flushed:
                    del self._near[key]
                return None
            if held is not None and held.stamp == wire.stamp:
                held.fresh_until, held.flushed = now + self.near_ttl_s, True
            if held is not None and (held.stamp == wire.stamp or (
                    not held.flushed and held.stamp.newer_than(wire.stamp))):
                self._near.move_to_end(key)  # unchanged, or a write of ours not yet taken
                entry, touch = held.entry, self._touch(*key)
        if entry is None:
            entry = self._decode(wire, bucket)
            if entry is None:
                return None
            with self._lock:
                self._hold(key, _Near(entry, wire.stamp, now + wire.stamp.expires_at - wall,
                                      now + self.near_ttl_s, True))
                touch = self._touch(*key)
        if touch:
            self.writes.add(_Row("touch", *key))
        return entry

    def _decode(self, wire: Entry, bucket: BucketKey) -> L2Entry | None:
        """The entry a fleet value holds; None (counted) if this version cannot read it or it
        is not of `bucket`."""
        assert wire.value is not None
        try:
            entry = decode_entry(wire.task, wire.value)
        except (ValueError, TypeError, ClusterError, msgpack.UnpackException):
            entry = None
        if entry is None or entry.bucket != bucket:
            with self._lock:
                self.bad_values += 1
            return None
        return entry

    def _hold(self, key: NearKey, near: _Near) -> None:
        self._near[key] = near
        self._near.move_to_end(key)
        while len(self._near) > self.near_max_entries:
            self._near.popitem(last=False)  # a pending write is still in its row

    def _forget(self, agent: str, task: str) -> None:
        """The fleet holds nothing under the key: drop what the near-cache fetched (a write
        of ours it has not taken yet stays)."""
        with self._lock:
            held = self._near.get((agent, task))
            if held is not None and held.flushed:
                del self._near[(agent, task)]

    # --- writes ---------------------------------------------------------------------------

    def put(self, entry: L2Entry) -> None:
        """Store `entry` (visible here at once, to the fleet after a flush). A private entry
        (a sensitive call's answer) is never stored in this shared store."""
        if entry.private:
            with self._lock:
                self.refused_private += 1
            return
        try:
            value = encode_entry(entry)
        except (TypeError, ValueError, OverflowError):
            with self._lock:
                self.unencodable += 1  # an answer with no canonical encoding stays local
            return
        agent = bucket_agent(entry.bucket)
        stamp = self._stamp()
        now = self._timer()
        wire = Entry(agent, entry.texts_key, stamp, value).to_list()
        with self._lock:
            self._puts += 1
            self._hold((agent, entry.texts_key),
                       _Near(entry, stamp, now + self.ttl_s, now + self.near_ttl_s, False))
            self._unsent[agent] = self._unsent.get(agent, 0) + 1
        self.writes.add(_Row("put", agent, entry.texts_key, wire, stamp))

    def _touch(self, agent: str, task: str) -> bool:
        """(Under the lock.) Whether a touch of the key must be queued: it tells the key's
        replicas it was used, once per flush."""
        if (agent, task) in self._touching:
            return False
        self._touching.add((agent, task))
        return True

    def _stamp(self) -> Stamp:
        wall = self._wall()
        with self._lock:
            self._version = max(self._version + 1, int(wall * 1e9))
            return Stamp(self._version, self.writer, wall + self.ttl_s)

    def _dropped(self, row: _Row) -> None:
        """A row dropped for room (a fleet that stays away): no longer waiting."""
        with self._lock:
            self._taken([row])

    def _taken(self, rows: list[_Row]) -> None:
        """(Under the lock.) These rows no longer wait to be sent."""
        for row in rows:
            if row.kind == "put":
                left = self._unsent.get(row.agent, 0) - 1
                if left > 0:
                    self._unsent[row.agent] = left
                else:
                    self._unsent.pop(row.agent, None)
            elif row.kind == "touch":
                self._touching.discard((row.agent, row.task))

    def flush(self) -> None:
        """Send every pending write now; rows no shard took stay pending for the next flush.
        Never raises for a fleet that does not answer."""
        self.writes.flush()

    def _send(self, rows: list[_Row]) -> list[_Row]:
        batches: dict[str, list[list[Any]]] = {}
        sent: dict[str, list[_Row]] = {}
        unplaced = []
        for row in rows:
            targets = (([row.shard] if self.client.is_up(row.shard) else []) if row.kind ==
                       "scope" else self.client.write_targets(row.agent))
            if not targets:
                unplaced.append(row)
            for shard in targets:
                sent.setdefault(shard, []).append(row)
                _add_op(batches.setdefault(shard, []), row)
        replies = self.client.send(batches)
        failed: dict[int, _Row] = {}
        evicted: set[NearKey] = set()
        for shard, reply in replies.items():
            if isinstance(reply, ClusterError) or any(s == FAILED for s, _ in reply):
                failed.update((id(r), r) for r in sent[shard])
                continue
            for (_, value), op in zip(reply, batches[shard], strict=True):
                if op[0] == "put_evicted" and isinstance(value, list) and len(value) == 2:
                    evicted.update(_key_pairs(value[1]))
        again = [r for r in unplaced + list(failed.values()) if r.kind != "touch"]
        kept = {id(r) for r in again}
        self._flushed([r for r in rows if id(r) not in kept], evicted)
        return again

    def _flushed(self, rows: list[_Row], evicted: set[NearKey]) -> None:
        now = self._timer()
        with self._lock:
            self._taken(rows)
            for row in rows:
                if row.kind != "put":
                    continue
                held = self._near.get((row.agent, row.task))
                if held is not None and held.stamp == row.stamp:
                    held.flushed, held.fresh_until = True, now + self.near_ttl_s
            for key in evicted:
                held = self._near.get(key)
                if held is not None and held.flushed:
                    del self._near[key]
            self._evictions += len(evicted)

    # --- invalidation ---------------------------------------------------------------------

    def invalidate_function(self, namespace: str, function: str) -> int:
        """Drop every entry of `function` in `namespace`, fleet-wide; how many."""
        return self._invalidate(function_scope(namespace, function))

    def invalidate_namespace(self, namespace: str) -> int:
        """Drop every entry of `namespace`, fleet-wide; how many."""
        return self._invalidate(namespace_scope(namespace))

    def _invalidate(self, scope: str) -> int:
        self.flush()  # what we wrote before the invalidation is removed by it, and counted
        stamp = self._stamp()
        names = self.client.topology.names
        up = [s for s in names if self.client.is_up(s)]
        op = ["invalidate_scope", NAMESPACE, scope, stamp.to_list()]
        replies = self.client.send({s: [op] for s in up})
        dropped: set[NearKey] = set()
        missed = [s for s in names if s not in up]
        for shard in up:
            reply = replies.get(shard)
            if reply is None or isinstance(reply, ClusterError) or reply[0][0] == FAILED:
                missed.append(shard)
                continue
            dropped.update(_key_pairs(reply[0][1]))
        now = self._timer()
        with self._lock:
            for key in [k for k in self._near if k[0].startswith(scope)]:
                if self._near.pop(key).expires > now:
                    dropped.add(key)
            self._invalidations += len(dropped)
        for shard in missed:  # sent again until taken: a floor is idempotent
            self.writes.add(_Row("scope", "", scope=scope, stamp=stamp, shard=shard))
        return len(dropped)

    # --- size and counters ----------------------------------------------------------------

    def __len__(self) -> int:
        """Distinct live entries the fleet holds (every shard asked; replicas counted once),
        and this store's writes no shard has taken yet."""
        self.flush()
        names = [s for s in self.client.topology.names if self.client.is_up(s)]
        replies = self.client.send({s: [["keys", NAMESPACE]] for s in names})
        keys: set[int] = set()
        for reply in replies.values():
            if not isinstance(reply, ClusterError) and reply[0][0] != FAILED:
                keys.update(k for k in reply[0][1] if isinstance(k, int))
        now = self._timer()
        with self._lock:
            keys.update(xxhash.xxh3_64_intdigest(f"{a}\x00{t}".encode())
                        for (a, t), h in self._near.items() if not h.flushed and h.expires > now)
        return len(keys)

    def stats(self) -> StoreStats:
        """This store's counters, and the fleet's size (`len`)."""
        entries = len(self)
        with self._lock:
            return StoreStats(entries, self._puts, self._evictions, self._expirations,
                              self._invalidations)

    def close(self) -> None:
        """Stop the background thread and flush what is pending (idempotent)."""
        self.writes.close(self.client.timeout_s * 2 + 1)


def _add_op(ops: list[list[Any]], row: _Row) -> None:
    """Append `row` to a shard's batch, merging it into the last op when of the same kind
    (the order of puts and touches is kept: replicas evict alike)."""
    if row.kind == "scope":
        assert row.stamp is not None
        ops.append(["invalidate_scope", NAMESPACE, row.scope, row.stamp.to_list()])
        return
    name, item = (("put_evicted", row.wire) if row.kind == "put"
                  else ("touch", [row.agent, row.task]))
    if ops and ops[-1][0] == name:
        ops[-1][2].append(item)
    else:
        ops.append([name, NAMESPACE, [item]])


def _key_pairs(items: Any) -> list[NearKey]:
    """The well-formed `[agent, task]` pairs of a shard's list (anything else is skipped)."""
    if not isinstance(items, list):
        return []
    return [(item[0], item[1]) for item in items
            if isinstance(item, list) and len(item) == 2
            and isinstance(item[0], str) and isinstance(item[1], str)]


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b)  # float32 unit vectors: within 1e-6 of the float64 product

