"""Test support for the cluster tests: in-process fleets and transports that fail on cue."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

from cluster.client import InProcessTransport, ShardClient
from cluster.errors import ClusterError, ShardUnavailable
from cluster.l2store import ShardedL2Store
from cluster.learner import SharedLearner
from cluster.planstore import ShardedPlanStore
from cluster.shard import CacheShard
from cluster.topology import ShardInfo, Topology

WALL = 1_700_000_000.0  # the wall clock of PlanStoreTests' plans


class ControlledTransport:
    """An in-process transport that records every request, can take shards down, and can
    hold requests until released (to make concurrent misses overlap)."""

    def __init__(self, shards: Mapping[str, CacheShard]) -> None:
        self.inner = InProcessTransport(shards)
        self.down: set[str] = set()
        self.requests: list[str] = []
        self.gate: threading.Event | None = None
        self._lock = threading.Lock()

    def call_many(self, requests: Mapping[str, bytes], timeout_s: float
                  ) -> dict[str, bytes | ClusterError]:
        with self._lock:
            self.requests.extend(requests)
        if self.gate is not None:
            self.gate.wait(10)
        up = {k: v for k, v in requests.items() if k not in self.down}
        out: dict[str, bytes | ClusterError] = dict(self.inner.call_many(up, timeout_s))
        for name in requests.keys() - up.keys():
            out[name] = ShardUnavailable(name, "taken down by the test")
        return out

    def close(self) -> None:
        pass


class LocalFleet:
    """`n` in-process shards sharing one wall clock derived from a `FakeClock`."""

    def __init__(self, clock: Callable[[], float], n: int = 3, replication: int = 2,
                 wall_start: float = WALL, namespace_max: Mapping[str, int] | None = None
                 ) -> None:
        self.clock = clock
        origin = clock()
        self.wall = lambda: wall_start + (clock() - origin)
        self.topology = Topology("test", tuple(ShardInfo(f"s{i}") for i in range(n)),
                                 replication)
        self.shards = {s.name: CacheShard(s.name, clock=self.wall, namespace_max=namespace_max)
                       for s in self.topology.shards}
        self.transport = ControlledTransport(self.shards)

    def client(self) -> ShardClient:
        return ShardClient(self.topology, self.transport, timer=self.clock)

    def store(self, *, learner: SharedLearner | None = None, background: bool = False,
              **options: object) -> ShardedPlanStore:
        options.setdefault("ttl_s", 60.0)
        return ShardedPlanStore(self.client(), timer=self.clock, wall_clock=self.wall,
                                learner=learner, background=background,
                                **options)  # type: ignore[arg-type]

    def l2_store(self, **options: object) -> ShardedL2Store:
        """A sharded L2 store on these shards (no flush thread unless asked)."""
        options.setdefault("ttl_s", 60.0)
        options.setdefault("background", False)
        return ShardedL2Store(self.client(), timer=self.clock, wall_clock=self.wall,
                              **options)  # type: ignore[arg-type]

    def holders(self, ns: str, agent: str, task: str) -> list[str]:
        """The shards whose own table holds a live value for the key (read directly)."""
        return [name for name, shard in self.shards.items()
                if shard.get_many(ns, [(agent, task)])[0] is not None]


def frozen_wall() -> float:
    """A shard actor's clock standing at `WALL`: with it, expiry is the facade's alone, on
    the test's fake clock (the shard's own expiry is tested on the plain class)."""
    return WALL
