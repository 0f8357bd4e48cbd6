"""`ShardedPlanStore`: the fleet's L1 plans behind the `PlanStore` protocol.

The engine and the router use it exactly like the local `L1PlanCache`. In front of the shards
sits an in-process **near-cache** of agent views: everything the fleet holds for an agent
(one fetch brings all of an agent's tasks, since rendezvous places an agent's tasks together),
so a task the view lacks is a known miss (a negative entry) as long as the view is fresh.

- `get` never waits on a round trip for an agent fetched within `near_ttl_s` (prefetched at
  run start, or fetched by an earlier miss); a hit returns the same plan object as long as
  the entry is unchanged. Concurrent misses of one agent share one fetch. A fleet that does
  not answer is a miss, and the view's last known plans stay usable until their own TTL:
  the local cache carries the run.
- `put`, `invalidate` and `invalidate_agent` apply to the view at once and are written
  behind: a background thread sends them every `flush_interval_s`, or as soon as
  `flush_rows` are pending, one request per shard, each row to the first `replication`
  shards of its agent that are up. Failed rows are sent again (writes are idempotent).
- The same thread refreshes the views that were read and are about to go stale, so a long
  run does not wait either. Staleness: a plan written or removed elsewhere is seen here
  within `near_ttl_s` (plus one flush interval) while the fleet answers.

Entries live `ttl_s` from their put, as wall-clock expiry (`wall_clock`) that every node reads
on its own clock; the view converts it to the injected monotonic `timer`.

Companions (`Companion`: the shared learner's outcomes, the shared L3 tables) keep other
namespaces of the same agents: their entries travel in the same requests (prefetched with the
plans, written behind with them), and the thread fetches the agents a companion wants
refreshed.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

from cluster.client import ShardClient
from cluster.companions import Companion
from cluster.errors import ClusterError
from cluster.learner import SharedLearner
from cluster.wire import FAILED, Entry, Stamp, entries_from
from delegation.errors import TargetError
from delegation.l1 import CacheStats, DelegationPlan, L1PlanCache, LoadReport

DEFAULT_NEAR_TTL_S = 5.0
DEFAULT_FLUSH_INTERVAL_S = 0.05
DEFAULT_FLUSH_ROWS = 1000
DEFAULT_MAX_PENDING = 100_000
REFRESH_AHEAD = 0.25  # refresh a read view in the last quarter of its freshness
NAMESPACE = "l1"


@dataclass(slots=True)
class _Held:
    plan: DelegationPlan | None  # None: removed here (a tombstone until flushed)
    stamp: Stamp
    expires: float  # on the store's timer
    flushed: bool = False


@dataclass(slots=True)
class _View:
    """What this process knows of one agent's plans."""

    tasks: dict[str, _Held] = field(default_factory=dict)
    fresh_until: float = float("-inf")  # complete as of a fetch until then (timer)
    floor: Stamp | None = None  # removed here: fleet entries not newer are ignored
    read: bool = False


@dataclass(slots=True)
class _Pending:
    ns: str
    agent: str
    entry: Entry | None = None  # a write (value or tombstone) ...
    floor: Stamp | None = None  # ... or an invalidate_agent
    plan: DelegationPlan | None = None  # encoded when sent, off the decide path


class ShardedPlanStore:
    """A `PlanStore` over the fleet's cache shards, with a near-cache; thread-safe.

    Args:
        client: the shards (placement, breakers, transport).
        ttl_s: lifetime of a plan from its put.
        near_ttl_s: how long a fetched view is trusted without asking the fleet again.
        flush_interval_s, flush_rows: write-behind: send at most this often, or this many.
        max_pending: rows kept for a fleet that does not answer (the oldest go first).
        max_agents: agent views kept in the near-cache (least recently used go first).
        writer: this store's writer id (default: a random one).
        timer: monotonic clock; wall_clock: epoch clock (versions and expiry across nodes).
        learner: a `SharedLearner` whose outcomes travel in the same batches.
        companions: more companions (after the learner) whose entries travel in them too.
        background: run the flush/refresh thread (tests of the bare logic turn it off).
    """

    def __init__(self, client: ShardClient, *, ttl_s: float = 3600.0,
                 near_ttl_s: float = DEFAULT_NEAR_TTL_S,
                 flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S,
                 flush_rows: int = DEFAULT_FLUSH_ROWS, max_pending: int = DEFAULT_MAX_PENDING,
                 max_agents: int = 10_000, writer: str | None = None,
                 timer: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time,
                 learner: SharedLearner | None = None, companions: Sequence[Companion] = (),
                 background: bool = True) -> None:
        self.client = client
        self.ttl_s, self.near_ttl_s = float(ttl_s), float(near_ttl_s)
        self.flush_interval_s, self.flush_rows = flush_interval_s, flush_rows
        self.max_pending, self.max_agents = max_pending, max_agents
        self.writer = writer or uuid.uuid4().hex[:16]
        self.learner = learner
        self.companions: list[Companion] = [*([learner] if learner else []), *companions]
        self._timer, self._wall = timer, wall_clock
        self._lock = threading.Lock()
        self._views: OrderedDict[str, _View] = OrderedDict()
        self._pending: list[_Pending] = []
        self._inflight: dict[str, threading.Event] = {}
        self._version = 0
        self._hits = self._misses = self._puts = self._evictions = 0
        self._invalidations = self._expirations = self.dropped_rows = self.waits = 0
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self.last_error: BaseException | None = None
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(target=self._loop, name="plan-store-flush",
                                            daemon=True)
            self._thread.start()

    # --- reads ----------------------------------------------------------------------------

    def get(self, agent: str, task: str) -> DelegationPlan | None:
        """The live plan for `(agent, task)`, from the near-cache when it can answer."""
        now = self._timer()
        with self._lock:
            found, known = self._lookup(agent, task, now)
            if known:
                return found
        self._fetch([agent], wait=True)
        with self._lock:
            found, known = self._lookup(agent, task, self._timer(), after_fetch=True)
            return found

    def _lookup(self, agent: str, task: str, now: float, after_fetch: bool = False
                ) -> tuple[DelegationPlan | None, bool]:
        """(plan, whether the near-cache's answer stands); counts hits and misses."""
        view = self._views.get(agent)
        if view is not None:
            held = view.tasks.get(task)
            if held is not None and held.expires <= now:
                del view.tasks[task]
                self._expirations += held.plan is not None
                held = None
            # A fresh view answers; so does a write of ours the fleet has not seen yet.
            if view.fresh_until > now or (held is not None and not held.flushed):
                view.read = True
                self._views.move_to_end(agent)
                if held is not None and held.plan is not None:
                    self._hits += 1
                    return held.plan, True
                self._misses += 1
                return None, True
        if after_fetch:
            self._misses += 1
            return None, True
        return None, False

    def prefetch(self, agents: Iterable[str]) -> None:
        """Fetch the views of `agents`, fresh or not: one request per shard (the companions'
        entries of the same agents travel in it)."""
        self._fetch(list(dict.fromkeys(agents)), wait=False, outcomes=True, force=True)

    def _fetch(self, agents: list[str], *, wait: bool, outcomes: bool = False,
               force: bool = False) -> None:
        now = self._timer()
        with self._lock:
            mine, theirs = [], []
            for agent in agents:
                view = self._views.get(agent)
                if view is not None and view.fresh_until > now and not force:
                    continue
                event = self._inflight.get(agent)
                if event is None:
                    self._inflight[agent] = threading.Event()
                    mine.append(agent)
                elif wait:
                    theirs.append(event)
            self.waits += bool(wait and (mine or theirs))  # this lookup waits on a round trip
        try:
            if mine:
                self._fetch_now(mine, outcomes)
        finally:
            with self._lock:
                for agent in mine:
                    self._inflight.pop(agent).set()
        for event in theirs:  # another thread fetches this agent: share its answer
            event.wait(self.client.timeout_s * 2)

    def _fetch_now(self, agents: list[str], outcomes: bool) -> None:
        remaining = list(agents)
        for _ in range(len(self.client.topology.names)):
            if not remaining:
                return
            groups: dict[str, list[str]] = {}
            for agent in remaining:
                order = self.client.live_order(agent)
                if order:
                    groups.setdefault(order[0], []).append(agent)
            if not groups:
                break
            batches = {shard: self._fetch_ops(names, outcomes) for shard, names in groups.items()}
            replies = self.client.send(batches)
            remaining = []
            for shard, names in groups.items():
                if not self._apply_fetch(names, replies.get(shard), outcomes):
                    remaining.extend(names)
        self._give_up(remaining)

    def _fetch_ops(self, agents: list[str], outcomes: bool) -> list[list[Any]]:
        ops: list[list[Any]] = [["agents", NAMESPACE, agents]]
        if outcomes:
            ops += [["agents", c.namespace, agents] for c in self.companions]
        return ops

    def _apply_fetch(self, agents: list[str], reply: Any, outcomes: bool) -> bool:
        if reply is None or isinstance(reply, ClusterError):
            return False
        try:
            (status, per_agent), *rest = reply
            if status == FAILED or len(per_agent) != len(agents):
                return False
            fetched = [entries_from(rows) for rows in per_agent]
            if outcomes:
                self._apply_companions(agents, rest)
        except (ClusterError, ValueError, TypeError):
            return False
        now = self._timer()
        with self._lock:
            for agent, entries in zip(agents, fetched, strict=True):
                self._merge_view(agent, entries, now)
        return True

    def _apply_companions(self, agents: list[str], results: list[Any]) -> None:
        for companion, (status, per_agent) in zip(self.companions, results, strict=False):
            if status == FAILED or len(per_agent) != len(agents):
                continue
            for agent, rows in zip(agents, per_agent, strict=True):
                companion.merge_agent(agent, entries_from(rows))

    def _merge_view(self, agent: str, entries: list[Entry], now: float) -> None:
        view = self._view(agent)
        seen = set()
        wall = self._wall()
        for entry in entries:
            seen.add(entry.task)
            # Versions are a hybrid logical clock: a write from here is newer than any it has
            # seen, whatever this node's wall clock says (an invalidation wins over what it saw).
            self._version = max(self._version, entry.stamp.version)
            if view.floor is not None and not entry.stamp.newer_than(view.floor):
                continue
            held = view.tasks.get(entry.task)
            if held is not None and not entry.stamp.newer_than(held.stamp):
                held.flushed = held.flushed or held.stamp == entry.stamp
                continue
            plan = _decode_plan(entry.value)
            if plan is not None:
                view.tasks[entry.task] = _Held(plan, entry.stamp,
                                               now + entry.stamp.expires_at - wall, True)
        for task in [t for t, h in view.tasks.items() if h.flushed and t not in seen]:
            del view.tasks[task]  # removed elsewhere (or expired there)
        view.fresh_until = now + self.near_ttl_s
        view.read = False

    def _give_up(self, agents: list[str]) -> None:
        """No shard answered for `agents`: keep what the views hold, ask again after a
        cooldown instead of on every lookup."""
        if not agents:
            return
        retry = self._timer() + min(self.near_ttl_s, self.client.cooldown_s)
        with self._lock:
            for agent in agents:
                view = self._view(agent)
                view.fresh_until = max(view.fresh_until, retry) if view.tasks else retry

    def _view(self, agent: str) -> _View:
        view = self._views.get(agent)
        if view is None:
            view = self._views[agent] = _View()
            while len(self._views) > self.max_agents:
                _, dropped = self._views.popitem(last=False)
                self._evictions += sum(h.plan is not None for h in dropped.tasks.values())
        return view

    # --- writes (applied here at once, sent behind) ---------------------------------------

    def put(self, agent: str, task: str, plan: DelegationPlan) -> None:
        """Store `plan`; visible to this store's `get` at once, to the fleet after a flush."""
        stamp = self._stamp(self.ttl_s)
        now = self._timer()
        with self._lock:
            self._view(agent).tasks[task] = _Held(plan, stamp, now + self.ttl_s)
            self._views.move_to_end(agent)
            self._puts += 1
            self._queue(_Pending(NAMESPACE, agent, Entry(agent, task, stamp, None), plan=plan))

    def invalidate(self, agent: str, task: str) -> bool:
        """Remove one entry here and in the fleet; whether a live one was known."""
        found = self.get(agent, task) is not None  # fetches the view if it is not fresh
        stamp = self._stamp(self.ttl_s)
        with self._lock:
            self._view(agent).tasks[task] = _Held(None, stamp, self._timer() + self.ttl_s)
            self._invalidations += found
            self._queue(_Pending(NAMESPACE, agent, Entry(agent, task, stamp, None)))
        return found

    def invalidate_agent(self, agent: str) -> int:
        """Remove every entry of `agent` here and in the fleet; how many live ones were
        known (after fetching the agent's view if it was not fresh)."""
        self._fetch([agent], wait=True)
        stamp = self._stamp(self.ttl_s)
        now = self._timer()
        with self._lock:
            view = self._view(agent)
            removed = sum(h.plan is not None and h.expires > now for h in view.tasks.values())
            view.tasks.clear()
            view.floor = stamp
            self._invalidations += removed
            self._queue(_Pending(NAMESPACE, agent, floor=stamp))
        return removed

    def _stamp(self, ttl_s: float) -> Stamp:
        wall = self._wall()
        with self._lock:
            self._version = max(self._version + 1, int(wall * 1e9))
            return Stamp(self._version, self.writer, wall + ttl_s)

    def _queue(self, row: _Pending) -> None:
        self._pending.append(row)
        self._trim()
        if len(self._pending) >= self.flush_rows:
            self._wake.set()

    def _trim(self) -> None:
        """Keep at most `max_pending` rows for a fleet that does not answer (oldest go)."""
        overflow = len(self._pending) - self.max_pending
        if overflow > 0:
            del self._pending[:overflow]
            self.dropped_rows += overflow

    def flush(self) -> None:
        """Send every pending write now (and the companions'); rows no shard took stay
        pending for the next flush. Never raises for a fleet that does not answer."""
        with self._flush_lock:
            with self._lock:
                rows, self._pending = self._pending, []
            for companion in self.companions:
                rows += [_Pending(companion.namespace, e.agent, e)
                         for e in companion.take_entries()]
            if rows:
                self._send(rows)

    def _send(self, rows: list[_Pending]) -> None:
        batches: dict[str, list[list[Any]]] = {}
        sent: dict[str, list[_Pending]] = {}
        puts: dict[tuple[str, str], list[Any]] = {}
        unplaced = []
        for row in rows:
            targets = self.client.write_targets(row.agent)
            if not targets:
                unplaced.append(row)
                continue
            wire = _wire_entry(row) if row.entry is not None else None
            for shard in targets:
                sent.setdefault(shard, []).append(row)
                if row.floor is not None:
                    batches.setdefault(shard, []).append(
                        ["invalidate_agent", row.ns, row.agent, row.floor.to_list()])
                    continue
                op = puts.get((shard, row.ns))
                if op is None:
                    op = puts[(shard, row.ns)] = ["put", row.ns, []]
                    batches.setdefault(shard, []).append(op)
                op[2].append(wire)
        replies = self.client.send(batches)
        failed = {id(r): r for shard, reply in replies.items() if _failed(reply)
                  for r in sent[shard]}
        self._mark_flushed([r for r in rows if id(r) not in failed])
        self._requeue(unplaced + list(failed.values()))

    def _mark_flushed(self, rows: list[_Pending]) -> None:
        with self._lock:
            for row in rows:
                if row.entry is None or row.ns != NAMESPACE:
                    continue
                view = self._views.get(row.agent)
                held = view.tasks.get(row.entry.task) if view is not None else None
                if held is not None and held.stamp == row.entry.stamp:
                    held.flushed = True

    def _requeue(self, rows: list[_Pending]) -> None:
        if not rows:
            return
        with self._lock:
            self._pending[:0] = rows
            self._trim()

    # --- the background thread ------------------------------------------------------------

    def _loop(self) -> None:
        while not self._closed:
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            if self._closed:
                return
            try:
                self.flush()
                self._refresh_ahead()
            except (ClusterError, ValueError, TypeError, OverflowError) as err:
                self.last_error = err  # a plan that cannot be encoded; the thread goes on

    def _refresh_ahead(self) -> None:
        now = self._timer()
        soon = now + self.near_ttl_s * REFRESH_AHEAD
        with self._lock:
            due = [a for a, v in self._views.items()
                   if v.read and now < v.fresh_until <= soon and a not in self._inflight]
        if due:
            self._fetch(due, wait=False, force=True)
        wanted = [agent for companion in self.companions for agent in companion.wanted()]
        if wanted:
            self._fetch(list(dict.fromkeys(wanted)), wait=False, outcomes=True, force=True)

    # --- the rest of the protocol ---------------------------------------------------------

    def stats(self) -> CacheStats:
        """The near-cache's counters (`size`: live plans it holds)."""
        now = self._timer()
        with self._lock:
            size = sum(h.plan is not None and h.expires > now
                       for v in self._views.values() for h in v.tasks.values())
            return CacheStats(self._hits, self._misses, self._puts, self._evictions,
                              self._invalidations, self._expirations, size)

    def live_plans(self) -> list[tuple[str, str, DelegationPlan, float]]:
        """(agent, task, plan, seconds left) of every live plan the near-cache holds."""
        now = self._timer()
        with self._lock:
            return [(agent, task, h.plan, h.expires - now)
                    for agent, view in self._views.items()
                    for task, h in view.tasks.items() if h.plan is not None and h.expires > now]

    def save(self, path: str | Path) -> int:
        """Write the live plans held here in the local L1 file format; how many."""
        plans = self.live_plans()
        local = L1PlanCache(self.ttl_s, max(1, len(plans)), timer=self._timer,
                            wall_clock=self._wall)
        for agent, task, plan, _ in plans:
            local.put(agent, task, plan)
        return local.save(path)

    def load(self, path: str | Path) -> LoadReport:
        """Restore plans saved by `save` (or by a local L1) as puts, keeping each plan's
        remaining lifetime; they reach the fleet with the next flush.

        Raises:
            PlanCacheError: the file exists but is not a plan file.
        """
        local = L1PlanCache(self.ttl_s, 1_000_000, timer=self._timer, wall_clock=self._wall)
        report = local.load(path)
        wall = self._wall()
        for agent in local.agents():
            for task, plan in local.plans_for_agent(agent).items():
                left = self.ttl_s - max(0.0, wall - plan.created_at)
                self._adopt(agent, task, plan, left)
        return report

    def _adopt(self, agent: str, task: str, plan: DelegationPlan, left_s: float) -> None:
        stamp = self._stamp(left_s)
        with self._lock:
            self._view(agent).tasks[task] = _Held(plan, stamp, self._timer() + left_s)
            self._queue(_Pending(NAMESPACE, agent, Entry(agent, task, stamp, None), plan=plan))

    def close(self) -> None:
        """Stop the background thread and flush what is pending (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(self.client.timeout_s * 2 + 1)
        self.flush()


def _wire_entry(row: _Pending) -> list[Any]:
    """The row's entry on the wire; a put's plan is encoded here, once, off the decide
    path (and kept, so a row sent again is not encoded again)."""
    entry = row.entry
    assert entry is not None
    if row.plan is not None:
        entry = row.entry = Entry(entry.agent, entry.task, entry.stamp, _encode_plan(row.plan))
        row.plan = None
    return entry.to_list()


def _encode_plan(plan: DelegationPlan) -> bytes:
    return msgpack.packb(plan.to_list(), use_bin_type=True)


def _decode_plan(value: bytes | None) -> DelegationPlan | None:
    if value is None:
        return None
    try:
        return DelegationPlan.from_list(msgpack.unpackb(value, raw=False))
    except (ValueError, TypeError, TargetError, msgpack.UnpackException):
        return None  # a value this version cannot read is a miss


def _failed(reply: Any) -> bool:
    return isinstance(reply, ClusterError) or any(status == FAILED for status, _ in reply)

