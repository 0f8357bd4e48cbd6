"""`ShardedPlanStore` over in-process shards: the `PlanStore` conformance suite, then the
near-cache, prefetch, single-flight, write-behind, replication and failure behaviour."""

from __future__ import annotations

import threading
import time

import pytest

from cluster.planstore import ShardedPlanStore
from cluster.wire import Entry, Stamp
from delegation.l1 import DelegationPlan, new_plan, task_key
from delegation.targets import LocalModel, RemoteModel
from delegation.testing import FakeClock, PlanStoreTests
from tests.cluster.support import LocalFleet

T = task_key(1, 2)


def plan(model: str = "m") -> DelegationPlan:
    return new_plan(LocalModel(model), 0.9, "why", {"layer": "capability"},
                    clock=lambda: 1_700_000_000.0)


def wait_for(condition, what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.01)


class TestShardedPlanStoreOverInProcessShards(PlanStoreTests):
    """The facade passes the same suite as the local L1 (background flushing on)."""

    def make_store(self, ttl_s: float, timer: FakeClock) -> ShardedPlanStore:
        fleet = LocalFleet(timer)
        store = fleet.store(ttl_s=ttl_s, background=True)
        self.fleets = {**getattr(self, "fleets", {}), id(store): fleet}
        return store

    def reopen(self, store: ShardedPlanStore) -> ShardedPlanStore:  # type: ignore[override]
        return self.fleets[id(store)].store(ttl_s=store.ttl_s)  # no thread: nothing to close


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1000.0)


@pytest.fixture
def fleet(clock: FakeClock) -> LocalFleet:
    return LocalFleet(clock)


def test_each_write_lands_on_the_agents_replicas(fleet: LocalFleet) -> None:
    store = fleet.store()
    for i in range(40):
        store.put(f"agent-{i}", T, plan())
    store.flush()
    placement = store.client.placement
    for i in range(40):
        assert sorted(fleet.holders("l1", f"agent-{i}", T)) == sorted(
            placement.replicas(f"agent-{i}"))


def test_prefetch_is_one_request_per_shard_and_then_nothing_waits(fleet: LocalFleet) -> None:
    writer = fleet.store()
    agents = [f"agent-{i}" for i in range(200)]
    for agent in agents[::2]:
        writer.put(agent, T, plan(agent))
    writer.flush()
    reader = fleet.store()
    fleet.transport.requests.clear()
    reader.prefetch(agents)
    assert sorted(fleet.transport.requests) == ["s0", "s1", "s2"]
    for i, agent in enumerate(agents):  # hits, and misses known from the views
        found = reader.get(agent, T)
        assert (found is not None) == (i % 2 == 0)
        assert reader.get(agent, task_key(9, 9)) is None
    assert len(fleet.transport.requests) == 3
    assert reader.waits == 0


def test_a_miss_fetches_the_agent_once_then_answers_from_the_view(fleet: LocalFleet) -> None:
    store = fleet.store()
    assert store.get("f", T) is None
    assert store.get("f", task_key(3, 3)) is None
    assert len(fleet.transport.requests) == 1 and store.waits == 1


def test_concurrent_misses_of_one_agent_share_one_fetch(fleet: LocalFleet) -> None:
    writer = fleet.store()
    writer.put("f", T, plan("shared"))
    writer.flush()
    reader = fleet.store()
    fleet.transport.requests.clear()
    fleet.transport.gate = gate = threading.Event()
    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(reader.get("f", T)))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    wait_for(lambda: fleet.transport.requests, "the first fetch")
    gate.set()
    for thread in threads:
        thread.join()
    assert len(fleet.transport.requests) == 1
    assert len(results) == 8 and all(r is results[0] and r is not None for r in results)


def test_writes_are_behind_until_flushed(fleet: LocalFleet, clock: FakeClock) -> None:
    a, b = fleet.store(), fleet.store()
    a.put("f", T, plan("behind"))
    assert fleet.holders("l1", "f", T) == [] and b.get("f", T) is None
    a.flush()
    clock.advance(b.near_ttl_s)  # b's view of f was fresh (negative) until now
    found = b.get("f", T)
    assert found is not None and found.target == LocalModel("behind")


def test_the_background_thread_flushes_when_enough_rows_wait(fleet: LocalFleet) -> None:
    store = fleet.store(background=True, flush_interval_s=3600.0, flush_rows=5)
    try:
        for i in range(5):
            store.put(f"a{i}", T, plan())
        wait_for(lambda: all(fleet.holders("l1", f"a{i}", T) for i in range(5)),
                 "the row-count flush")
    finally:
        store.close()


def test_a_plan_written_or_removed_elsewhere_is_seen_within_the_near_ttl(
        fleet: LocalFleet, clock: FakeClock) -> None:
    a, b = fleet.store(), fleet.store()
    b.prefetch(["f"])
    a.put("f", T, plan("new"))
    a.flush()
    assert b.get("f", T) is None  # still within b's near-cache TTL: stale by design
    clock.advance(b.near_ttl_s)
    first = b.get("f", T)
    assert first is not None
    clock.advance(b.near_ttl_s)
    assert b.get("f", T) is first  # unchanged in the fleet: the same object
    assert a.invalidate("f", T) is True
    a.flush()
    assert b.get("f", T) is first
    clock.advance(b.near_ttl_s)
    assert b.get("f", T) is None


def test_invalidate_agent_counts_what_the_fleet_holds_and_outlives_late_copies(
        fleet: LocalFleet, clock: FakeClock) -> None:
    a, b = fleet.store(), fleet.store()
    for i in range(3):
        a.put("f", task_key(i, 0), plan())
    a.flush()
    old = Entry("f", task_key(7, 0), Stamp(1, "ancient", fleet.wall() + 60), b"late copy")
    assert b.invalidate_agent("f") == 3
    b.flush()
    for shard in fleet.shards.values():
        shard.put_many("l1", [old])  # a replica copy older than the removal arrives late
    c = fleet.store()
    assert all(c.get("f", task_key(i, 0)) is None for i in (0, 1, 2, 7))


def test_a_down_shard_is_gone_around_and_costs_no_call(fleet: LocalFleet,
                                                        clock: FakeClock) -> None:
    writer = fleet.store()
    order = writer.client.placement.order("f")
    fleet.transport.down = {order[0]}
    writer.put("f", T, plan("around"))
    writer.flush()  # the primary fails; the row is sent again, around it
    clock.advance(writer.client.cooldown_s / 2)
    writer.flush()
    assert sorted(fleet.holders("l1", "f", T)) == sorted(order[1:3])
    reader = fleet.store()
    found = reader.get("f", T)  # tries the primary, fails, reads the next replica
    assert found is not None and found.target == LocalModel("around")
    assert reader.client.stats().down == (order[0],)


def test_a_fleet_that_does_not_answer_is_a_miss_and_the_near_cache_carries_the_run(
        fleet: LocalFleet, clock: FakeClock) -> None:
    store = fleet.store()
    store.put("f", T, plan("known"))
    store.flush()
    fleet.transport.down = set(fleet.shards)
    clock.advance(store.near_ttl_s * 3)
    known = store.get("f", T)
    assert known is not None and known.target == LocalModel("known")
    assert store.get("g", T) is None
    requests = len(fleet.transport.requests)
    assert store.get("g", task_key(5, 5)) is None  # in cooldown: no new request
    assert len(fleet.transport.requests) == requests
    store.put("h", T, plan("queued"))
    store.flush()
    assert fleet.holders("l1", "h", T) == []
    fleet.transport.down = set()
    clock.advance(20.0)  # every cooldown is over
    store.flush()
    assert fleet.holders("l1", "h", T) != []
    clock.advance(30.0)  # "known" is past its TTL now, fleet or not
    assert store.get("f", T) is None


def test_a_value_this_version_cannot_read_is_a_miss(fleet: LocalFleet) -> None:
    garbage = Entry("f", T, Stamp(1, "other", fleet.wall() + 60), b"\xc1not a plan")
    for shard in fleet.shards.values():
        shard.put_many("l1", [garbage])
    assert fleet.store().get("f", T) is None


def test_refresh_ahead_keeps_a_read_view_fresh_without_waiting(fleet: LocalFleet,
                                                                clock: FakeClock) -> None:
    store = fleet.store(background=True)
    try:
        store.put("f", T, new_plan(RemoteModel("r"), 0.5, "x", clock=fleet.wall))
        store.flush()
        store.prefetch(["f"])
        clock.advance(store.near_ttl_s * 0.9)
        before = len(fleet.transport.requests)
        assert store.get("f", T) is not None  # read late in its freshness
        wait_for(lambda: len(fleet.transport.requests) > before, "a refresh ahead")
        clock.advance(store.near_ttl_s * 0.5)  # past the first freshness
        settled = len(fleet.transport.requests)
        assert store.get("f", T) is not None
        assert store.waits == 0 and len(fleet.transport.requests) == settled
    finally:
        store.close()


def test_a_fleet_that_stays_away_costs_at_most_max_pending_rows(fleet: LocalFleet) -> None:
    store = fleet.store(max_pending=3)
    fleet.transport.down = set(fleet.shards)
    for i in range(5):
        store.put(f"a{i}", T, plan())
    store.flush()
    assert store.dropped_rows == 2  # the oldest went; the newest three wait for the fleet
    assert all(store.get(f"a{i}", T) is not None for i in range(5))  # still served here
