"""What rides along with the plan store: entries of other namespaces of the same agents.

The shared learner (`outcomes`) and the shared L3 tables (`l3`) keep their entries under the
same agents as the L1 plans (a function name), so rendezvous puts them on the same shards and
one request per shard fetches or writes all of them. `ShardedPlanStore` takes them as
companions: prefetch and refresh fetch their namespaces too, and each flush sends what they
changed.
"""

from __future__ import annotations

from typing import Protocol

from cluster.wire import Entry


class Companion(Protocol):
    """Entries of another namespace of the same agents, kept by some other object (the
    shared learner, the shared L3 tables), that travel in the plan store's batches."""

    namespace: str

    def take_entries(self) -> list[Entry]:
        """What changed since the last call, as entries to write (under its agents)."""
        ...

    def merge_agent(self, agent: str, entries: list[Entry]) -> int:
        """Every live entry the fleet holds for `agent` in the namespace; how many merged."""
        ...

    def wanted(self) -> list[str]:
        """Agents to fetch again (in the background), because their entries were used and
        are getting old."""
        ...
