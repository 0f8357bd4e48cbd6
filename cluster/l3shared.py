"""`SharedContextualCache`: L3 tables learned together by every node of a fleet.

Each node writes, under its own writer id, its own discounted table of each (function,
context): one entry per table in the shards' `l3` namespace, agent = the function (so it sits
beside the function's L1 plans and outcomes), task = `"<context fingerprint>/<writer>"`,
value = msgpack `[L3_FORMAT, [[target tagged, weight, reward, calls], ...]]`. A node's table
is a state, not a delta: a write retried or copied to a replica twice changes nothing (last
writer wins per writer), and a restarted shard gets the same tables back from its replicas.

`decide` weighs this node's own arms plus every other writer's last table of the same
(function, context) — a table of one context never serves another. Another writer's table
fades with this node's own outcomes in that context since it arrived (multiplied by
`discount ** n`), as if it had been learned here just before them, so a node that stopped
writing (or that learned before a target degraded) loses weight as this one learns; a new
copy from a writer replaces its old one.

The tables of a program's functions come with the run's L1 prefetch (this cache is a
`cluster.companions.Companion` of the `ShardedPlanStore`: one request per shard, written
behind with the plans); the functions decided on are fetched again in the background once
their tables are older than `near_ttl_s`. A decision never waits on the fleet.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import msgpack

from cluster.wire import Entry, Stamp
from delegation.errors import TargetError
from delegation.l3.cache import Arm, ContextualCache, Key, Table
from delegation.l3.config import L3Config
from delegation.l3.context import Context
from delegation.targets import ExecTarget, from_tagged

L3_FORMAT = 1
NAMESPACE = "l3"
DEFAULT_NEAR_TTL_S = 5.0


def encode_table(arms: dict[ExecTarget, Arm]) -> bytes:
    """A table as an `l3` value."""
    return msgpack.packb([L3_FORMAT, [[t.to_tagged(), a.weight, a.reward, a.calls]
                                      for t, a in arms.items()]], use_bin_type=True)


def decode_table(value: bytes) -> dict[ExecTarget, Arm]:
    """Inverse of `encode_table`.

    Raises:
        ValueError, TypeError, TargetError, msgpack.UnpackException: not a table.
    """
    fmt, rows = msgpack.unpackb(value, raw=False)
    if fmt != L3_FORMAT or not isinstance(rows, list):
        raise ValueError(f"table format {fmt!r}")
    arms = {}
    for tagged, weight, reward, calls in rows:
        numbers = (weight, reward)
        if not all(isinstance(n, (int, float)) and not isinstance(n, bool) for n in numbers):
            raise TypeError("weights and rewards are numbers")
        if not isinstance(calls, int) or isinstance(calls, bool):
            raise TypeError("calls is an integer")
        if not (0.0 <= reward <= weight + 1e-9 and calls >= 0):
            raise ValueError("a reward is within 0..weight, calls >= 0")
        arms[from_tagged(tagged)] = Arm(float(weight), float(reward), calls)
    return arms


@dataclass
class _Theirs:
    """Another writer's last table of one (function, context)."""

    arms: dict[ExecTarget, Arm]
    stamp: Stamp
    mine_then: int  # this node's outcomes in the context when it arrived


@dataclass
class _Fleet:
    """What the other writers learned in one (function, context): their tables, and their
    faded sum as of `mine_then` (summed when tables arrive, not at each decision)."""

    writers: dict[str, _Theirs] = field(default_factory=dict)
    total: dict[ExecTarget, Arm] = field(default_factory=dict)
    mine_then: int = 0


class SharedContextualCache(ContextualCache):
    """A `ContextualCache` whose tables include the rest of the fleet's; thread-safe.

    Args:
        writer: this runtime's writer id (distinct per runtime).
        config: `[delegation.l3]` (its `ttl_s` is also how long the fleet keeps a table after
            its writer's last write).
        timer: monotonic clock; wall_clock: epoch clock (versions and expiry across nodes).
        near_ttl_s: how old the fleet's tables of a function may get before the background
            fetches them again (after a decision used them).
    """

    namespace = NAMESPACE

    def __init__(self, writer: str, config: L3Config | None = None, *,
                 timer: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time,
                 near_ttl_s: float = DEFAULT_NEAR_TTL_S) -> None:
        super().__init__(config, timer=timer)
        self.writer = writer
        self.near_ttl_s = near_ttl_s
        self._wall = wall_clock
        self._fleet: OrderedDict[Key, _Fleet] = OrderedDict()
        self._mine: dict[Key, int] = {}  # this node's outcomes per table
        self._dirty: set[Key] = set()
        self._read: set[str] = set()  # functions decided on since their last fetch
        self._fetched: dict[str, float] = {}
        self._version = 0
        self._shared_lock = threading.Lock()  # versions only; tables are under `_lock`
        self.bad_values = 0

    # --- deciding and learning ----------------------------------------------------------

    def _weighed(self, key: Key, table: Table | None) -> dict[ExecTarget, Arm]:
        arms = super()._weighed(key, table)
        self._read.add(key[0])
        fleet = self._fleet.get(key)
        if fleet is None:
            return arms
        fade = self.config.discount ** max(0, self._mine.get(key, 0) - fleet.mine_then)
        _add_into(arms, fleet.total, fade)
        return arms

    def record(self, function: str, context: Context, target: ExecTarget, ok: bool,
               latency_s: float, cost: float = 0.0) -> None:
        super().record(function, context, target, ok, latency_s, cost)
        key = (function, context.fingerprint)
        with self._lock:
            self._mine[key] = self._mine.get(key, 0) + 1
            self._dirty.add(key)
            if len(self._mine) > 2 * self.config.max_entries:  # keep the counts of live tables
                self._mine = {k: n for k, n in self._mine.items()
                              if k in self._tables or k in self._fleet}

    # --- the companion of the plan store ------------------------------------------------

    def take_entries(self) -> list[Entry]:
        """This node's tables changed since the last call, as `l3` entries to write."""
        with self._lock:
            dirty, self._dirty = self._dirty, set()
            tables = [(key, {t: Arm(a.weight, a.reward, a.calls) for t, a in table.arms.items()})
                      for key in sorted(dirty) if (table := self._tables.get(key)) is not None]
        return [Entry(function, f"{fp}/{self.writer}", self._stamp(), encode_table(arms))
                for (function, fp), arms in tables]

    def _stamp(self) -> Stamp:
        wall = self._wall()
        with self._shared_lock:
            self._version = max(self._version + 1, int(wall * 1e9))
            return Stamp(self._version, self.writer, wall + self.config.ttl_s)

    def merge_agent(self, agent: str, entries: list[Entry]) -> int:
        """Every live table the fleet holds for function `agent`: other writers' replace what
        was known of them (a writer whose table is gone is forgotten); how many merged."""
        decoded: dict[Key, dict[str, tuple[dict[ExecTarget, Arm], Stamp]]] = {}
        for entry in entries:
            fp, _, writer = entry.task.partition("/")
            if entry.value is None or writer != entry.stamp.writer or writer == self.writer:
                continue
            try:
                arms = decode_table(entry.value)
            except (ValueError, TypeError, TargetError, msgpack.UnpackException):
                self.bad_values += 1
                continue
            decoded.setdefault((agent, fp), {})[writer] = (arms, entry.stamp)
        with self._lock:
            self._fetched[agent] = self._timer()
            for key in [k for k in self._fleet if k[0] == agent and k not in decoded]:
                del self._fleet[key]
            for key, writers in decoded.items():
                self._merge_table(key, writers)
        return sum(len(w) for w in decoded.values())

    def _merge_table(self, key: Key, writers: dict[str, tuple[dict[ExecTarget, Arm], Stamp]]
                     ) -> None:
        """(Under the lock.)"""
        fleet = self._fleet.get(key) or _Fleet()
        mine = self._mine.get(key, 0)
        kept = {}
        for writer, (arms, stamp) in writers.items():
            held = fleet.writers.get(writer)
            kept[writer] = (held if held is not None and not stamp.newer_than(held.stamp)
                            else _Theirs(arms, stamp, mine))
        fleet.writers = kept
        fleet.total, fleet.mine_then = self._faded_sum(kept.values(), mine), mine
        self._fleet[key] = fleet
        self._fleet.move_to_end(key)
        while len(self._fleet) > self.config.max_entries:
            old, _ = self._fleet.popitem(last=False)
            self._mine.pop(old, None)

    def _faded_sum(self, writers: Iterable[_Theirs], mine: int) -> dict[ExecTarget, Arm]:
        """The writers' tables summed, each faded by this node's outcomes since it came."""
        total: dict[ExecTarget, Arm] = {}
        for theirs in writers:
            _add_into(total, theirs.arms, self.config.discount ** max(0, mine - theirs.mine_then))
        return total

    def wanted(self) -> list[str]:
        """Functions decided on whose fleet tables are older than `near_ttl_s`."""
        now = self._timer()
        with self._lock:
            due = sorted(f for f in self._read
                         if self._fetched.get(f, float("-inf")) + self.near_ttl_s <= now)
            self._read.clear()
            for function in due:
                self._fetched[function] = now  # asked: not again before near_ttl_s
        return due

    def invalidate_function(self, function: str) -> int:
        """Forget every context's table of `function` here (the fleet's copies fade by their
        TTL, or are replaced by their writers' next tables)."""
        with self._lock:
            for key in [k for k in self._fleet if k[0] == function]:
                del self._fleet[key]
        return super().invalidate_function(function)


def _add_into(total: dict[ExecTarget, Arm], arms: dict[ExecTarget, Arm], fade: float) -> None:
    """Add `arms`, their weights and rewards times `fade`, into `total`."""
    for target, arm in arms.items():
        into = total.setdefault(target, Arm())
        into.weight += arm.weight * fade
        into.reward += arm.reward * fade
        into.calls += arm.calls
