"""L1: the delegation plan cache.

Key `(agent, task)`: the agent is the function symbol and `task = task_key(arg_fp,
runtime_hash)`, the hex of the argument-type fingerprint XOR the runtime context hash. A
value is a `DelegationPlan`. Entries live `ttl_s` seconds from their `put` on the injected
monotonic `timer`; the cache holds at most `max_entries` and evicts the least recently used.

One lock guards everything (data, both indexes, stats), so there is no lock order to get
wrong. `get` on a hit is one dict lookup, one compare against the timer and an LRU move.

Persistence: `save(path)` writes canonical msgpack atomically; `load(path)` restores plans
with their remaining lifetime measured in wall-clock time from the plan's `created_at`
(epoch seconds) against the cache's current `ttl_s`. A plan whose lifetime ran out while no
process held it is not restored (counted in `LoadReport.expired`); a `created_at` in the
future (a clock that moved back) counts as age zero.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from delegation.errors import PlanCacheError
from delegation.statefile import StateFile
from delegation.targets import ExecTarget, from_tagged

FILE_FORMAT = 1
FILE_KIND = "rtfs-l1-plans"
_STATE = StateFile(FILE_KIND, FILE_FORMAT, "L1 plan cache", PlanCacheError)
DEFAULT_TTL_S = 3600.0
DEFAULT_MAX_ENTRIES = 10_000

Key = tuple[str, str]


def task_key(arg_fp: int, runtime_hash: int) -> str:
    """The L1 task key: 16 lowercase hex digits of `arg_fp ^ runtime_hash` (both 64-bit)."""
    return format((arg_fp ^ runtime_hash) & 0xFFFF_FFFF_FFFF_FFFF, "016x")


@dataclass(frozen=True, slots=True)
class DelegationPlan:
    """A cached decision: run on `target`; `created_at` is wall-clock epoch seconds.

    `metadata` holds short msgpack-able details (e.g. which layer decided), str keys.
    """

    target: ExecTarget
    confidence: float
    reasoning: str
    created_at: float
    metadata: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def to_list(self) -> list[Any]:
        """Canonical msgpack-able form: `[target tagged, confidence, reasoning, created_at,
        [[key, value], ...] sorted by key]`."""
        items = [[k, self.metadata[k]] for k in sorted(self.metadata)]
        return [
            self.target.to_tagged(),
            float(self.confidence),
            self.reasoning,
            float(self.created_at),
            items,
        ]

    @classmethod
    def from_list(cls, data: Any) -> DelegationPlan:
        """Inverse of `to_list`; raises `ValueError`, `TypeError` or `TargetError` if malformed."""
        tagged, confidence, reasoning, created_at, items = data
        if not isinstance(reasoning, str):
            raise TypeError("reasoning must be a string")
        metadata = {}
        for key, value in items:
            if not isinstance(key, str):
                raise TypeError("metadata keys must be strings")
            metadata[key] = value
        return cls(
            from_tagged(tagged),
            float(confidence),
            reasoning,
            float(created_at),
            MappingProxyType(metadata),
        )


def new_plan(
    target: ExecTarget,
    confidence: float,
    reasoning: str,
    metadata: Mapping[str, Any] | None = None,
    *,
    clock: Callable[[], float] = time.time,
) -> DelegationPlan:
    """Make a plan stamped with `clock()` (wall-clock epoch seconds by default)."""
    return DelegationPlan(
        target, confidence, reasoning, clock(), MappingProxyType(dict(metadata or {}))
    )


@dataclass(frozen=True, slots=True)
class CacheStats:
    """Counters since the cache was made; `hit_rate` = hits / (hits + misses), 0 if none.

    `expirations` counts entries dropped because their TTL ran out (found on `get` or by
    `purge_expired`); `evictions` those dropped for room; `invalidations` those removed by
    an `invalidate*` call or `clear`.
    """

    hits: int
    misses: int
    puts: int
    evictions: int
    invalidations: int
    expirations: int
    size: int

    @property
    def hit_rate(self) -> float:
        """hits / (hits + misses), or 0.0 before any lookup."""
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else 0.0


@dataclass(frozen=True, slots=True)
class LoadReport:
    """What `load` did: plans restored and plans dropped because their TTL had run out."""

    restored: int
    expired: int


class L1PlanCache:
    """Thread-safe TTL + LRU cache of `DelegationPlan`s keyed by `(agent, task)`.

    Args:
        ttl_s: lifetime of an entry from its `put`, in seconds (>= 0; 0 caches nothing).
        max_entries: capacity; the least recently used entry goes first.
        timer: monotonic clock for expiry (inject a fake one in tests).
        wall_clock: epoch clock, used only to age plans across `save`/`load`.
    """

    def __init__(
        self,
        ttl_s: float = DEFAULT_TTL_S,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        *,
        timer: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if ttl_s < 0:
            raise ValueError(f"ttl_s must be >= 0, not {ttl_s}")
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, not {max_entries}")
        self.ttl_s = float(ttl_s)
        self.max_entries = max_entries
        self._timer = timer
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        # key -> (plan, expires_at on timer); order = least recently used first.
        self._data: OrderedDict[Key, tuple[DelegationPlan, float]] = OrderedDict()
        self._by_agent: dict[str, set[str]] = {}
        self._by_task: dict[str, set[str]] = {}
        self._hits = self._misses = self._puts = 0
        self._evictions = self._invalidations = self._expirations = 0

    # --- hot path -------------------------------------------------------------------------

    def get(self, agent: str, task: str) -> DelegationPlan | None:
        """Return the live plan for `(agent, task)` and mark it recently used, else None."""
        key = (agent, task)
        with self._lock:
            entry = self._data.get(key)
            if entry is not None:
                if entry[1] > self._timer():
                    self._data.move_to_end(key)
                    self._hits += 1
                    return entry[0]
                self._remove(key)
                self._expirations += 1
            self._misses += 1
            return None

    def put(self, agent: str, task: str, plan: DelegationPlan) -> None:
        """Store `plan` for `(agent, task)`, replacing any plan there; may evict the LRU."""
        key = (agent, task)
        with self._lock:
            self._puts += 1
            self._store(key, plan, self._timer() + self.ttl_s)

    def _store(self, key: Key, plan: DelegationPlan, expires_at: float) -> None:
        if key in self._data:
            self._data.move_to_end(key)
        else:
            if len(self._data) >= self.max_entries:
                self._drop_expired()  # an expired entry goes before any live one is evicted
            while len(self._data) >= self.max_entries:
                self._remove(next(iter(self._data)))
                self._evictions += 1
            self._by_agent.setdefault(key[0], set()).add(key[1])
            self._by_task.setdefault(key[1], set()).add(key[0])
        self._data[key] = (plan, expires_at)

    def _remove(self, key: Key) -> None:
        del self._data[key]
        agent, task = key
        _discard(self._by_agent, agent, task)
        _discard(self._by_task, task, agent)

    # --- queries --------------------------------------------------------------------------

    def plans_for_agent(self, agent: str) -> dict[str, DelegationPlan]:
        """Return task -> live plan for every task cached for `agent` (not counted as hits)."""
        now = self._timer()
        with self._lock:
            tasks = self._by_agent.get(agent, ())
            return {t: e[0] for t in tasks if (e := self._data[(agent, t)])[1] > now}

    def plans_for_task(self, task: str) -> dict[str, DelegationPlan]:
        """Return agent -> live plan for every agent cached under `task`."""
        now = self._timer()
        with self._lock:
            agents = self._by_task.get(task, ())
            return {a: e[0] for a in agents if (e := self._data[(a, task)])[1] > now}

    def agents(self) -> list[str]:
        """Every agent with at least one stored entry (live or not yet purged), sorted."""
        with self._lock:
            return sorted(self._by_agent)

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            entry = self._data.get(key)  # type: ignore[call-overload]
            return entry is not None and entry[1] > self._timer()

    # --- invalidation ---------------------------------------------------------------------

    def invalidate(self, agent: str, task: str) -> bool:
        """Remove one entry; return whether it was there."""
        with self._lock:
            if (agent, task) not in self._data:
                return False
            self._remove((agent, task))
            self._invalidations += 1
            return True

    def invalidate_agent(self, agent: str) -> int:
        """Remove every entry of `agent`; return how many."""
        with self._lock:
            return self._invalidate_keys([(agent, t) for t in self._by_agent.get(agent, ())])

    def invalidate_task(self, task: str) -> int:
        """Remove every entry under `task`; return how many."""
        with self._lock:
            return self._invalidate_keys([(a, task) for a in self._by_task.get(task, ())])

    def clear(self) -> int:
        """Remove every entry (counted as invalidations); return how many."""
        with self._lock:
            return self._invalidate_keys(list(self._data))

    def _invalidate_keys(self, keys: list[Key]) -> int:
        for key in keys:
            self._remove(key)
        self._invalidations += len(keys)
        return len(keys)

    def purge_expired(self) -> int:
        """Drop every expired entry now; return how many."""
        with self._lock:
            return self._drop_expired()

    def _drop_expired(self) -> int:
        now = self._timer()
        dead = [key for key, (_, expires) in self._data.items() if expires <= now]
        for key in dead:
            self._remove(key)
        self._expirations += len(dead)
        return len(dead)

    # --- the rest of the PlanStore protocol (nothing to do for an in-process store) --------

    def prefetch(self, agents: Iterable[str]) -> None:
        """Nothing to fetch: every plan of this store is already in this process."""

    def flush(self) -> None:
        """Nothing to flush: every `put` is visible at once."""

    def close(self) -> None:
        """Nothing to release."""

    # --- stats ----------------------------------------------------------------------------

    def stats(self) -> CacheStats:
        """A consistent snapshot of the counters."""
        with self._lock:
            return CacheStats(
                self._hits,
                self._misses,
                self._puts,
                self._evictions,
                self._invalidations,
                self._expirations,
                len(self._data),
            )

    def check_invariants(self) -> None:
        """Raise AssertionError if the indexes disagree with the data (for tests)."""
        with self._lock:
            assert len(self._data) <= self.max_entries, "over capacity"
            pairs = {(a, t) for a, ts in self._by_agent.items() for t in ts}
            assert pairs == set(self._data), "agent index disagrees with the data"
            pairs = {(a, t) for t, agents in self._by_task.items() for a in agents}
            assert pairs == set(self._data), "task index disagrees with the data"
            assert all(self._by_agent.values()) and all(self._by_task.values()), "empty sets"

    # --- persistence ----------------------------------------------------------------------

    def save(self, path: str | Path) -> int:
        """Write the live plans to `path` atomically, least recently used first; return count.

        Format: canonical msgpack `[FILE_FORMAT, "rtfs-l1-plans", [[agent, task, plan...]]]`.
        """
        now = self._timer()
        with self._lock:
            rows = [
                [agent, task, *plan.to_list()]
                for (agent, task), (plan, expires) in self._data.items()
                if expires > now
            ]
        _STATE.write(path, rows)
        return len(rows)

    def load(self, path: str | Path) -> LoadReport:
        """Restore plans saved by `save`; a missing file restores nothing.

        Raises:
            PlanCacheError: the file is not a plan cache this version can read.
        """
        rows = _STATE.read(path, _row)
        if rows is None:
            return LoadReport(0, 0)
        restored = expired = 0
        now_wall, now = self._wall_clock(), self._timer()
        with self._lock:
            for agent, task, plan in rows:
                remaining = self.ttl_s - max(0.0, now_wall - plan.created_at)
                if remaining <= 0:
                    expired += 1
                    continue
                self._store((agent, task), plan, now + remaining)
                restored += 1
        return LoadReport(restored, expired)


def _discard(index: dict[str, set[str]], key: str, member: str) -> None:
    members = index[key]
    members.discard(member)
    if not members:
        del index[key]


def _row(row: Any) -> tuple[str, str, DelegationPlan]:
    agent, task, *plan = row
    if not isinstance(agent, str) or not isinstance(task, str):
        raise TypeError("agent and task must be strings")
    return agent, task, DelegationPlan.from_list(plan)
