"""The Ray shell: the facade over shard actors passes `PlanStoreTests`; Ray's errors arrive
as ours, caught by their own types; a shard that cannot be placed times out."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import ray

from cluster.actors import (
    ACTOR_OPTIONS,
    CacheShardActor,
    Fleet,
    RayTransport,
    open_fleet,
    ray_get,
    start_fleet,
)
from cluster.errors import (
    ALL_ERRORS,
    ClusterError,
    FleetExists,
    FleetNotFound,
    ShardTimeout,
    ShardUnavailable,
)
from cluster.planstore import ShardedPlanStore
from cluster.wire import encode_request
from delegation.testing import FakeClock, PlanStoreTests
from tests.cluster.conftest import ensure_ray
from tests.cluster.support import WALL, frozen_wall
from tests.cluster.test_errors import SAMPLES


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    ensure_ray()
    made = start_fleet(f"actors-{uuid.uuid4().hex[:8]}", 3, 2, clock=frozen_wall)
    yield made
    made.stop()


class TestShardedPlanStoreOverActors(PlanStoreTests):
    """The same suite over real shard actors (cleared before each store is made)."""

    @pytest.fixture(autouse=True)
    def _fleet(self, fleet: Fleet) -> Iterator[None]:
        self.fleet, self.reopened = fleet, list[ShardedPlanStore]()
        yield
        for store in self.reopened:
            store.close()

    def make_store(self, ttl_s: float, timer: FakeClock) -> ShardedPlanStore:
        client = self.fleet.client(timeout_s=10.0, timer=timer)
        for name in self.fleet.topology.names:
            client.call(name, ["clear"])
        return self._store(ttl_s, timer)

    def _store(self, ttl_s: float, timer: FakeClock) -> ShardedPlanStore:
        origin = timer.now
        return ShardedPlanStore(self.fleet.client(timeout_s=10.0, timer=timer), ttl_s=ttl_s,
                                timer=timer, wall_clock=lambda: WALL + timer.now - origin)

    def reopen(self, store: ShardedPlanStore) -> ShardedPlanStore:  # type: ignore[override]
        other = ShardedPlanStore(store.client, ttl_s=store.ttl_s, timer=store._timer,
                                 wall_clock=store._wall)
        self.reopened.append(other)
        return other


def test_a_running_fleet_is_found_by_namespace_and_not_started_twice(fleet: Fleet) -> None:
    found = open_fleet("test", fleet.namespace)
    assert found.topology == fleet.topology
    with pytest.raises(FleetExists):
        start_fleet(fleet.namespace, 3, 2)
    with pytest.raises(FleetNotFound):
        open_fleet("test", "no-such-fleet")


@ray.remote(num_cpus=0)
def _raise(error: ClusterError) -> None:
    raise error


@pytest.mark.parametrize("error", [e for e, _, _ in SAMPLES], ids=lambda e: type(e).__name__)
def test_an_error_raised_in_ray_arrives_as_itself(error: ClusterError) -> None:
    ensure_ray()
    with pytest.raises(type(error)) as caught:
        ray_get(_raise.remote(error), timeout_s=30, name="raiser")
    assert type(caught.value) is type(error) and caught.value.args == error.args
    assert {type(e) for e, _, _ in SAMPLES} == set(ALL_ERRORS)


def test_a_shard_that_cannot_be_placed_times_out_instead_of_hanging() -> None:
    ensure_ray()
    namespace = f"unplaced-{uuid.uuid4().hex[:8]}"
    handle: Any = ray.remote(CacheShardActor).options(
        name="nowhere", namespace=namespace, resources={"no-such-resource": 1},
        **ACTOR_OPTIONS).remote("nowhere", namespace)
    try:
        reply = RayTransport(namespace).call_many({"nowhere": encode_request([["ping"]])}, 0.5)
        assert isinstance(reply["nowhere"], ShardTimeout)
    finally:
        ray.kill(handle, no_restart=True)


def test_a_shard_stopped_for_good_is_unavailable(fleet: Fleet) -> None:
    namespace = f"gone-{uuid.uuid4().hex[:8]}"
    small = start_fleet(namespace, 1, 1)
    transport = small.transport()
    request = encode_request([["ping"]])
    assert isinstance(transport.call_many({"rtfs-shard-0": request}, 10.0)["rtfs-shard-0"], bytes)
    small.stop()  # ray.kill is asynchronous: a call racing it may still be answered
    deadline = time.monotonic() + 30
    reply = transport.call_many({"rtfs-shard-0": request}, 10.0)["rtfs-shard-0"]
    while isinstance(reply, bytes) and time.monotonic() < deadline:
        time.sleep(0.1)
        reply = transport.call_many({"rtfs-shard-0": request}, 10.0)["rtfs-shard-0"]
    assert isinstance(reply, ShardUnavailable)
    fresh = RayTransport(namespace).call_many({"rtfs-shard-0": request}, 1.0)
    assert isinstance(fresh["rtfs-shard-0"], ShardUnavailable)


def test_a_lookup_the_gcs_does_not_answer_costs_the_calls_timeout(
        fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the head dead, `ray.get_actor` waits 60 s for the GCS; a shard call that must
    first find its actor waits its own timeout instead, for every shard of the batch
    together, and concurrent lookups of one actor share one question to the GCS."""
    from cluster import lookup

    answered = threading.Event()
    asked: list[str] = []
    get_actor = ray.get_actor

    def gcs_gone(name: str, namespace: str) -> Any:
        asked.append(name)
        answered.wait(60)
        return get_actor(name, namespace=namespace)

    monkeypatch.setattr(lookup.ray, "get_actor", gcs_gone)
    transport = RayTransport(fleet.namespace)  # no handles yet: every shard is looked up
    request = encode_request([["ping"]])
    names = fleet.topology.names
    started = time.monotonic()
    replies = transport.call_many({name: request for name in names}, 0.5)
    waited = time.monotonic() - started
    assert all(isinstance(replies[name], ShardTimeout) for name in names), replies
    assert waited < 5  # one timeout for the whole batch, not one per shard, not 60 s
    again = transport.call_many({names[0]: request}, 0.2)
    assert isinstance(again[names[0]], ShardTimeout)
    assert sorted(asked) == sorted(names)  # the second call waited on the first lookup
    answered.set()  # the GCS is back: the lookups in flight finish and the shards answer
    deadline = time.monotonic() + 30
    while not all(isinstance(r, bytes) for r in replies.values()):
        assert time.monotonic() < deadline, replies
        replies = transport.call_many({name: request for name in names}, 10.0)
