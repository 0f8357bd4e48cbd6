"""The sharded tiers under a shard kill (issue 12): L2 lookups (exact and semantic) and L3
decisions run on real actors while one shard is SIGKILLed; Ray restarts it empty and it
rehydrates from its replicas. Zero wrong answers, zero failed calls; afterwards the restarted
shard's own table holds every L2 entry and L3 table it replicates."""

from __future__ import annotations

import functools
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pytest

from cluster.actors import DIRECTORY_NAME, Fleet, ray_get, start_fleet
from cluster.l2codec import bucket_agent
from cluster.l2store import ShardedL2Store
from cluster.l3shared import SharedContextualCache
from cluster.planstore import ShardedPlanStore
from delegation.l2.keys import BucketKey
from delegation.l2.store import L2Entry
from delegation.l2.testing import unit
from delegation.l3 import make_context
from delegation.targets import LocalModel
from tests.cluster.conftest import ensure_ray
from tests.cluster.test_shard_faults import wait_restarted

BUCKETS = [BucketKey("acme", f"fn-{i % 6}", f"digest-{i}") for i in range(48)]
PER_BUCKET = 4
DIM = 32
FUNCTIONS = [f"route-{i}" for i in range(24)]
FAST, SLOW = LocalModel("fast"), LocalModel("slow")
CONTEXT = make_context({"tenant": "acme", "environment": "prod"})
VICTIM = "rtfs-shard-1"


@pytest.fixture
def fleet() -> Iterator[Fleet]:
    ensure_ray()
    made = start_fleet(f"tiers-{uuid.uuid4().hex[:8]}", 3, 2)
    yield made
    made.stop()


def best(function: str) -> LocalModel:
    return FAST if int(function.rsplit("-", 1)[1]) % 2 == 0 else SLOW


def seed(fleet: Fleet) -> dict[tuple[int, int], np.ndarray]:
    """L2 entries in every bucket and an L3 table per function (its best target clear),
    written by a seeding node and flushed."""
    rng = np.random.default_rng(0)
    vectors = {(b, j): unit(rng, DIM) for b in range(len(BUCKETS)) for j in range(PER_BUCKET)}
    l2 = ShardedL2Store(fleet.client(timeout_s=10.0), background=False)
    for (b, j), v in vectors.items():
        l2.put(L2Entry(BUCKETS[b], f"k:q{b}-{j}", (f"question {b} {j}",), f"a{b}-{j}", "m1", v,
                       time.time()))
    l2.close()
    l3 = SharedContextualCache("seeder")
    plans = ShardedPlanStore(fleet.client(timeout_s=10.0), companions=[l3], background=False)
    for function in FUNCTIONS:
        other = SLOW if best(function) == FAST else FAST
        for _ in range(30):
            l3.record(function, CONTEXT, best(function), True, 0.05)
            l3.record(function, CONTEXT, other, True, 3.0)
    plans.close()
    return vectors


@dataclass
class Load:
    """Threads asking L2 (an exact lookup and a semantic one per round) and deciding with L3
    over and over, each with its own stores, whose near-caches go stale almost at once (so
    they keep asking the shards)."""

    fleet: Fleet
    vectors: dict[tuple[int, int], np.ndarray]
    lookups: int = 0
    hits: int = 0
    decisions: int = 0
    wrong: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self) -> list[threading.Thread]:
        started = [threading.Thread(target=self._l2_worker, args=(n,)) for n in range(2)]
        started.append(threading.Thread(target=self._l3_worker))
        for thread in started:
            thread.start()
        return started

    def _l2_worker(self, n: int) -> None:
        store = ShardedL2Store(self.fleet.client(timeout_s=5.0), near_ttl_s=0.01)
        rng = np.random.default_rng(n + 1)
        try:
            while not self.stop.is_set():
                b, j = int(rng.integers(len(BUCKETS))), int(rng.integers(PER_BUCKET))
                self._guard(f"L2 {b}/{j}", functools.partial(self._l2_round, store, rng, b, j))
        finally:
            store.close()

    def _l2_round(self, store: ShardedL2Store, rng: np.random.Generator, b: int, j: int) -> None:
        expected = f"a{b}-{j}"
        exact = store.get_exact(BUCKETS[b], f"k:q{b}-{j}")
        noisy = self.vectors[(b, j)] + rng.normal(0.0, 0.03, DIM).astype(np.float32)
        query = (noisy / np.linalg.norm(noisy)).astype(np.float32)
        near = store.find(BUCKETS[b], f"k:paraphrase {b} {j}", "m1", lambda: query, 2)
        found = [e.value for e in (exact,) if e is not None]
        found += [e.value for e, _ in near.nearest[:1]]
        with self.lock:
            self.lookups += 2
            self.hits += len(found)
            self.wrong += [f"L2 {b}/{j}: {value!r}" for value in found if value != expected]

    def _l3_worker(self) -> None:
        l3 = SharedContextualCache(f"reader-{uuid.uuid4().hex[:6]}", near_ttl_s=0.01)
        plans = ShardedPlanStore(self.fleet.client(timeout_s=5.0), companions=[l3],
                                 near_ttl_s=0.01, flush_interval_s=0.01)
        plans.prefetch(FUNCTIONS)
        try:
            while not self.stop.is_set():
                for function in FUNCTIONS:
                    self._guard(function, functools.partial(self._decide, l3, function))
        finally:
            plans.close()

    def _decide(self, l3: SharedContextualCache, function: str) -> None:
        decision = l3.decide(function, CONTEXT, [FAST, SLOW])
        with self.lock:
            self.decisions += 1
            if decision.target != best(function) or decision.explored:
                self.wrong.append(f"L3 {function}: {decision.reason}")
        time.sleep(0.001)  # the refreshes behind get their turn

    def _guard(self, what: str, step: Callable[[], None]) -> None:
        try:
            step()
        except Exception as err:  # noqa: BLE001 - every failure is what this test counts
            with self.lock:
                self.errors.append(f"{what}: {type(err).__name__}: {err}")

    def settle(self, lookups: int, decisions: int, timeout_s: float = 90.0) -> None:
        """Let at least this many more lookups and decisions happen."""
        lookups += self.lookups
        decisions += self.decisions
        deadline = time.monotonic() + timeout_s
        while (self.lookups < lookups or self.decisions < decisions) and (
                time.monotonic() < deadline):
            time.sleep(0.05)


def test_the_sharded_tiers_under_a_shard_kill(fleet: Fleet) -> None:
    vectors = seed(fleet)
    handle = fleet.shards[VICTIM]
    pid = ray_get(handle.info.remote(), timeout_s=10.0, name=VICTIM)["pid"]
    load = Load(fleet, vectors)
    threads = load.run()
    try:
        load.settle(200, 200)
        os.kill(pid, signal.SIGKILL)
        info = wait_restarted(handle)
        load.settle(400, 400)
    finally:
        load.stop.set()
        for thread in threads:
            thread.join(60)
    assert load.errors == [] and load.wrong == []
    assert load.lookups >= 600 and load.decisions >= 600
    assert load.hits >= load.lookups * 0.9  # a fault may cost a hit, never an answer
    assert info["pid"] != pid and info["rehydrated"] > 0 and info["unanswered"] == []
    # Ground truth from the restarted shard's own table: what it replicates is back.
    client = fleet.client(timeout_s=10.0)
    placement = client.placement
    mine = [b for b in BUCKETS if VICTIM in placement.replicas(bucket_agent(b))]
    assert mine and len(client.call(VICTIM, ["keys", "l2"])) == len(mine) * PER_BUCKET
    functions = [f for f in FUNCTIONS if VICTIM in placement.replicas(f)]
    tables = client.call(VICTIM, ["agents", "l3", functions])
    assert functions and all(len(rows) == 1 for rows in tables)
    restarts = ray_get(fleet.directory.restarts.remote(), timeout_s=10.0, name=DIRECTORY_NAME)
    assert restarts[VICTIM] == 1
