"""`PlanStore`: what the engine and the router use of L1, the plan cache.

The embedded runtime uses `delegation.l1.L1PlanCache`; a fleet uses the cluster's sharded
facade, which keeps an in-process near-cache in front of cache-shard actors. Both pass
`delegation.testing.PlanStoreTests`, so the engine and the router run unchanged on either.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Protocol, runtime_checkable

from delegation.l1 import CacheStats, DelegationPlan, LoadReport


@runtime_checkable
class PlanStore(Protocol):
    """L1 plans keyed by `(agent, task)` (agent = function symbol, task = `task_key(...)`).

    A store is thread-safe. Entries live the store's TTL from their `put`, measured on the
    store's injected monotonic timer. A plan from a store is advisory: the security and health
    wrappers re-check every decision made from one.
    """

    def get(self, agent: str, task: str) -> DelegationPlan | None:
        """The live plan for `(agent, task)`, else None.

        A hit returns the *same object* as long as the entry is unchanged: the engine caches the
        decision it derived from a plan by the plan's identity. Never raises for a backend
        problem (an unreachable backend is a miss).
        """
        ...

    def put(self, agent: str, task: str, plan: DelegationPlan) -> None:
        """Store `plan` for `(agent, task)`, replacing any plan there.

        May be written behind: visible to this store's `get` at once, to other clients after
        `flush`. Never raises for a backend problem.
        """
        ...

    def invalidate(self, agent: str, task: str) -> bool:
        """Remove one entry; True if a live one was there."""
        ...

    def invalidate_agent(self, agent: str) -> int:
        """Remove every entry of `agent`; how many were removed (as far as this store knows)."""
        ...

    def prefetch(self, agents: Iterable[str]) -> None:
        """Load the plans of `agents` ahead of use (a run starts by naming its symbols).

        A local store has nothing to do; a remote one fetches in as few round trips as it can.
        """
        ...

    def flush(self) -> None:
        """Make every `put` so far visible to other clients of the same backing store."""
        ...

    def stats(self) -> CacheStats:
        """Counters since the store was made (hits, misses, puts, ...)."""
        ...

    def save(self, path: str | Path) -> int:
        """Persist the live plans this process holds to `path` (atomic); how many."""
        ...

    def load(self, path: str | Path) -> LoadReport:
        """Restore plans saved by `save` (a missing file restores nothing).

        Raises:
            PlanCacheError: the file exists but is not a plan file.
        """
        ...

    def close(self) -> None:
        """Flush and release what the store holds (idempotent)."""
        ...
