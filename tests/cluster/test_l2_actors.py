"""L2 and L3 on real shard actors: `ShardedL2Store` passes `L2StoreTests`, a semantic lookup
is one request to one actor, and L3 tables written by one node reach another through them."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from cluster.actors import Fleet, start_fleet
from cluster.l2codec import bucket_agent
from cluster.l2store import ShardedL2Store
from cluster.l3shared import SharedContextualCache
from cluster.planstore import ShardedPlanStore
from delegation.l2.keys import BucketKey
from delegation.l2.store import L2Entry, L2Store
from delegation.l2.testing import L2StoreTests, unit
from tests.cluster.conftest import ensure_ray
from tests.cluster.support import WALL, frozen_wall
from tests.delegation.l2.test_l3 import A, B, X

BUCKET = BucketKey("ns", "ask", "d1")


class Fleets:
    """Fleets of three actors (two copies of each entry) by L2 capacity, started on first
    use; their shards' clocks stand still, so expiry is the stores' own, on the tests'
    fake clocks."""

    def __init__(self) -> None:
        self.started: dict[int, Fleet] = {}

    def get(self, l2_max_entries: int) -> Fleet:
        if l2_max_entries not in self.started:
            ensure_ray()
            self.started[l2_max_entries] = start_fleet(
                f"l2-{l2_max_entries}-{uuid.uuid4().hex[:8]}", 3, 2, clock=frozen_wall,
                namespace_max={"l2": l2_max_entries})
        return self.started[l2_max_entries]

    def stop(self) -> None:
        for fleet in self.started.values():
            fleet.stop()


@pytest.fixture(scope="module")
def fleets() -> Iterator[Fleets]:
    made = Fleets()
    yield made
    made.stop()


def cleared_client(fleet: Fleet, timer: Callable[[], float]):  # type: ignore[no-untyped-def]
    client = fleet.client(timeout_s=10.0, timer=timer)
    for name in fleet.topology.names:
        client.call(name, ["clear"])
    return client


class TestShardedL2StoreOverActors(L2StoreTests):
    """The suite over three shard actors, cleared before each store is made."""

    @pytest.fixture(autouse=True)
    def _fleets(self, fleets: Fleets) -> None:
        self.fleets = fleets

    def make_store(self, max_entries: int, ttl_s: float,
                   timer: Callable[[], float]) -> L2Store:
        client = cleared_client(self.fleets.get(max_entries), timer)
        origin = timer()
        return ShardedL2Store(client, ttl_s=ttl_s, timer=timer, background=False,
                              wall_clock=lambda: WALL + timer() - origin)


def test_a_semantic_lookup_is_one_request_to_one_actor(fleets: Fleets) -> None:
    fleet = fleets.get(100)
    client = cleared_client(fleet, lambda: 0.0)
    writer = ShardedL2Store(client, background=False, wall_clock=lambda: WALL)
    rng = np.random.default_rng(0)
    vectors = [unit(rng, 32) for _ in range(20)]
    for i, v in enumerate(vectors):
        writer.put(L2Entry(BUCKET, f"k:{i}", (f"text {i}",), i, "m1", v, WALL))
    writer.flush()
    reader_client = fleet.client(timeout_s=10.0)
    reader = ShardedL2Store(reader_client, background=False, wall_clock=lambda: WALL)
    before = reader_client.stats().requests
    found = reader.find(BUCKET, "k:a paraphrase", "m1", lambda: vectors[7], 3)
    assert found.exact is None and found.nearest[0][0].value == 7
    assert found.nearest[0][1] == pytest.approx(1.0, abs=1e-5)
    assert reader_client.stats().requests - before == 1
    primary = reader_client.placement.order(bucket_agent(BUCKET))[0]
    held = reader_client.call(primary, ["keys", "l2"])
    assert len(held) == 20  # the bucket lives on its replica set, the primary first


def test_l3_tables_travel_between_nodes_through_the_actors(fleets: Fleets) -> None:
    fleet = fleets.get(100)
    cleared_client(fleet, lambda: 0.0)
    nodes = []
    for name in ("node-1", "node-2"):
        l3 = SharedContextualCache(name, wall_clock=lambda: WALL)
        store = ShardedPlanStore(fleet.client(timeout_s=10.0), companions=[l3],
                                 background=False, wall_clock=lambda: WALL)
        nodes.append((l3, store))
    (first, first_store), (second, second_store) = nodes
    for _ in range(6):
        first.record("lookup-order", X, A, True, 0.05)
        first.record("lookup-order", X, B, True, 2.0)
    first_store.flush()
    second_store.prefetch(["lookup-order"])
    decision = second.decide("lookup-order", X, [A, B])
    assert decision.target == A and not decision.explored
    assert second.arms("lookup-order", X)[A].calls == 6
