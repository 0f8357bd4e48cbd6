"""Which cache shards hold an agent's entries: rendezvous (highest-random-weight) hashing.

Every shard gets a score per agent, `xxh3_64(shard name, agent)`; the agent's shards are the
ones with the highest scores. Adding or removing a shard moves only the agents whose top
shards changed (about 1/N of them), and every client computes the same answer from the
shard names alone: no ring, no coordination.

An agent is kept on `replication` shards (its replica set). When shards carry a failure
domain (the node they were placed on), the replica set takes shards of distinct domains
first, so losing one node never loses every copy. `Placement.order(agent)` is the replica set
followed by the remaining shards by score: a client that finds a shard down walks on to the
next one, and a shard restarted empty knows which agents it should get back from its peers.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import xxhash

MEMO_MAX = 65_536  # agents whose order is remembered; the memo is dropped when full


@dataclass(frozen=True)
class ShardInfo:
    """A shard's name (its actor name) and failure domain (a node label; "" = unknown)."""

    name: str
    domain: str = ""


@dataclass(frozen=True)
class Topology:
    """The shards of one fleet and how many copies of each entry it keeps.

    Raises:
        ValueError: no shards, duplicate names, or a replication factor out of range.
    """

    namespace: str
    shards: tuple[ShardInfo, ...]
    replication: int = 1

    def __post_init__(self) -> None:
        names = [s.name for s in self.shards]
        if not names:
            raise ValueError("a topology needs at least one shard")
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate shard names in {names}")
        if not 1 <= self.replication <= len(names):
            raise ValueError(f"replication must be 1..{len(names)}, not {self.replication}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.shards)

    def to_list(self) -> list[Any]:
        """msgpack-able form: `[namespace, replication, [[name, domain], ...]]`."""
        return [self.namespace, self.replication, [[s.name, s.domain] for s in self.shards]]

    @classmethod
    def from_list(cls, data: Any) -> Topology:
        """Inverse of `to_list`; raises `ValueError` or `TypeError` if malformed."""
        namespace, replication, shards = data
        if not isinstance(namespace, str) or not isinstance(replication, int):
            raise TypeError("namespace must be a string and replication an integer")
        infos = []
        for name, domain in shards:
            if not isinstance(name, str) or not isinstance(domain, str):
                raise TypeError("shard names and domains must be strings")
            infos.append(ShardInfo(name, domain))
        return cls(namespace, tuple(infos), replication)


def default_replication(shards: int) -> int:
    """The default replication factor: 2 when there are at least two shards, else 1."""
    return 2 if shards >= 2 else 1


def score(shard: str, agent: str) -> int:
    """The rendezvous weight of `shard` for `agent`."""
    return xxhash.xxh3_64_intdigest(f"{shard}\x00{agent}".encode())


def rendezvous_order(shards: Sequence[ShardInfo], agent: str, replication: int
                     ) -> tuple[str, ...]:
    """All shard names for `agent`: its replica set first (distinct domains preferred), then
    the others, each part by descending weight."""
    ranked = sorted(shards, key=lambda s: (score(s.name, agent), s.name), reverse=True)
    chosen: list[ShardInfo] = []
    domains: set[str] = set()
    for shard in ranked:  # first pass: one shard per domain
        if len(chosen) < replication and (not shard.domain or shard.domain not in domains):
            chosen.append(shard)
            domains.add(shard.domain)
    for shard in ranked:  # fewer domains than copies: fill by weight
        if len(chosen) < replication and shard not in chosen:
            chosen.append(shard)
    rest = [s for s in ranked if s not in chosen]
    return tuple(s.name for s in chosen + rest)


class Placement:
    """Memoized rendezvous placement over one `Topology`; thread-safe."""

    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        self.replication = topology.replication
        self._memo: dict[str, tuple[str, ...]] = {}
        self._lock = threading.Lock()

    def order(self, agent: str) -> tuple[str, ...]:
        """Every shard name, in the order `agent`'s entries look for them."""
        found = self._memo.get(agent)
        if found is None:
            found = rendezvous_order(self.topology.shards, agent, self.replication)
            with self._lock:
                if len(self._memo) >= MEMO_MAX:
                    self._memo.clear()
                self._memo[agent] = found
        return found

    def replicas(self, agent: str) -> tuple[str, ...]:
        """The shards that hold `agent`'s entries when every shard is up."""
        return self.order(agent)[: self.replication]

    def holds(self, shard: str, agent: str) -> bool:
        """Whether `shard` is one of `agent`'s replicas."""
        return shard in self.replicas(agent)
