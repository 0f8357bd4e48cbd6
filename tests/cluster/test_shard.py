"""`CacheShard`, the plain class: versions, tombstones, floors, TTL, LRU, replicas, stats."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from cluster.shard import CacheShard, ShardStats
from cluster.topology import Placement, ShardInfo, Topology
from cluster.wire import Entry, Stamp
from delegation.testing import FakeClock

NOW = 1_700_000_000.0


def entry(agent: str, task: str, version: int, value: bytes | None = b"v",
          writer: str = "w", ttl_s: float = 60.0) -> Entry:
    return Entry(agent, task, Stamp(version, writer, NOW + ttl_s), value)


def make(max_entries: int = 100) -> tuple[CacheShard, FakeClock]:
    clock = FakeClock(NOW)
    return CacheShard("s0", max_entries=max_entries, clock=clock), clock


def values(shard: CacheShard, ns: str, keys: list[tuple[str, str]]) -> list[bytes | None]:
    return [e.value if e is not None else None for e in shard.get_many(ns, keys)]


def test_put_then_get_and_namespaces_are_separate() -> None:
    shard, _ = make()
    assert shard.put_many("l1", [entry("f", "t", 1, b"plan")]) == 1
    assert values(shard, "l1", [("f", "t"), ("f", "u")]) == [b"plan", None]
    assert values(shard, "outcomes", [("f", "t")]) == [None]


def test_last_writer_wins_and_a_replayed_write_changes_nothing() -> None:
    shard, _ = make()
    shard.put_many("l1", [entry("f", "t", 5, b"five")])
    assert shard.put_many("l1", [entry("f", "t", 4, b"four")]) == 0  # older
    assert shard.put_many("l1", [entry("f", "t", 5, b"five")]) == 0  # the same write again
    assert values(shard, "l1", [("f", "t")]) == [b"five"]
    assert shard.put_many("l1", [entry("f", "t", 5, b"b-wins", writer="x")]) == 1  # tie: id
    assert shard.put_many("l1", [entry("f", "t", 6, b"six")]) == 1
    assert values(shard, "l1", [("f", "t")]) == [b"six"]


def test_a_tombstone_hides_the_value_and_refuses_older_writes() -> None:
    shard, _ = make()
    shard.put_many("l1", [entry("f", "t", 1)])
    assert shard.invalidate("l1", "f", "t", Stamp(2, "w", NOW + 60)) is True
    assert values(shard, "l1", [("f", "t")]) == [None]
    assert shard.put_many("l1", [entry("f", "t", 1, b"late replica copy")]) == 0
    assert shard.invalidate("l1", "f", "t", Stamp(3, "w", NOW + 60)) is False
    assert shard.put_many("l1", [entry("f", "t", 4, b"new")]) == 1
    assert values(shard, "l1", [("f", "t")]) == [b"new"]


def test_invalidate_agent_counts_live_values_and_sets_a_floor() -> None:
    shard, _ = make()
    shard.put_many("l1", [entry("f", str(i), 1) for i in range(3)] + [entry("g", "0", 1)])
    assert shard.invalidate_agent("l1", "f", Stamp(2, "w", NOW + 60)) == 3
    assert values(shard, "l1", [("f", "0"), ("g", "0")]) == [None, b"v"]
    assert shard.put_many("l1", [entry("f", "9", 1)]) == 0  # older than the floor
    assert shard.put_many("l1", [entry("f", "9", 3)]) == 1


def test_entries_expire_on_the_injected_clock() -> None:
    shard, clock = make()
    shard.put_many("l1", [entry("f", "t", 1, ttl_s=10)])
    clock.advance(9)
    assert values(shard, "l1", [("f", "t")]) == [b"v"]
    clock.advance(2)
    assert values(shard, "l1", [("f", "t")]) == [None]
    assert shard.stats().expirations == 1
    assert shard.put_many("l1", [entry("f", "t", 2, ttl_s=5)]) == 0  # dead on arrival


def test_least_recently_used_goes_first_and_an_expired_one_before_any() -> None:
    shard, clock = make(max_entries=3)
    shard.put_many("l1", [entry("a", "t", 1), entry("b", "t", 1), entry("c", "t", 1)])
    shard.get_many("l1", [("a", "t")])  # a is now the most recently used
    shard.put_many("l1", [entry("d", "t", 1)])
    assert values(shard, "l1", [("b", "t")]) == [None]  # (a miss reorders nothing)
    assert (shard.stats().evictions, shard.stats().entries) == (1, 3)
    shard.put_many("l1", [entry("e", "t", 2, ttl_s=1)])  # evicts the LRU, c
    clock.advance(2)  # e expires; the next put drops it before evicting a live entry
    shard.put_many("l1", [entry("f", "t", 2)])
    assert values(shard, "l1", [("a", "t"), ("c", "t"), ("d", "t"), ("f", "t")]) == [
        b"v", None, b"v", b"v"]
    assert (shard.stats().expirations, shard.stats().evictions) == (1, 2)


def test_get_agents_returns_every_live_task_and_counts_one_lookup_per_agent() -> None:
    shard, _ = make()
    shard.put_many("l1", [entry("f", "t1", 1, b"1"), entry("f", "t2", 1, b"2"),
                          entry("f", "t3", 1, None)])
    found = shard.get_agents("l1", ["f", "nobody"])
    assert sorted(e.value or b"" for e in found[0]) == [b"1", b"2"]
    assert found[1] == []
    stats = shard.stats()
    assert (stats.hits, stats.misses, stats.entries, stats.tombstones) == (1, 1, 2, 1)


def test_dump_for_a_shard_holds_exactly_the_agents_it_replicates() -> None:
    topology = Topology("t", tuple(ShardInfo(f"s{i}") for i in range(4)), 2)
    placement = Placement(topology)
    shard, _ = make(max_entries=10_000)
    agents = [f"agent-{i}" for i in range(300)]
    shard.put_many("l1", [entry(a, "t", 1) for a in agents])
    shard.invalidate_agent("outcomes", "agent-7", Stamp(1, "w", NOW + 60))
    records, floors, scopes = shard.dump_for("s2", placement)
    expected = {a for a in agents if "s2" in placement.replicas(a)}
    assert {e.agent for _, e in records} == expected
    assert 0 < len(expected) < len(agents)
    assert floors == ([("outcomes", "agent-7", Stamp(1, "w", NOW + 60))]
                      if "agent-7" in expected else [])
    assert scopes == []


def test_stats_round_trip() -> None:
    stats = ShardStats("s", 1, 2, 3, 4, 5, 6)
    assert ShardStats.from_list(stats.to_list()) == stats


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abc"), st.sampled_from("xy"),
                          st.integers(0, 20), st.sampled_from(["w1", "w2"]),
                          st.booleans()), max_size=30),
       st.randoms(use_true_random=False))
def test_replicas_that_saw_the_same_writes_in_any_order_agree(
        writes: list[tuple[str, str, int, str, bool]], rng: random.Random) -> None:
    # A writer's versions only grow, so one stamp is one write: the first one generated.
    unique = {(a, t, v, w): tomb for a, t, v, w, tomb in reversed(writes)}
    rows = [Entry(a, t, Stamp(v, w, NOW + 60), None if tomb else f"{a}{t}{v}{w}".encode())
            for (a, t, v, w), tomb in unique.items()]
    one, _ = make()
    two, _ = make()
    one.put_many("l1", rows)
    shuffled = list(rows)
    rng.shuffle(shuffled)
    for row in shuffled:
        two.put_many("l1", [row, row])  # duplicates too: a retried write
    keys = [(a, t) for a in "abc" for t in "xy"]
    # Ground truth: for each key the write with the greatest (version, writer).
    newest: dict[tuple[str, str], Entry] = {}
    for row in rows:
        held = newest.get((row.agent, row.task))
        if held is None or row.stamp.newer_than(held.stamp):
            newest[(row.agent, row.task)] = row
    truth = [newest[k].value if k in newest else None for k in keys]
    assert values(one, "l1", keys) == truth
    assert values(two, "l1", keys) == truth


def test_clear_drops_values_tombstones_and_floors() -> None:
    shard, _ = make()
    shard.put_many("l1", [entry("f", "t", 1), entry("g", "t", 1)])
    shard.invalidate("l1", "f", "t", Stamp(2, "w", NOW + 60))
    shard.invalidate_agent("outcomes", "h", Stamp(9, "w", NOW + 60))
    assert shard.clear() == 1
    assert shard.stats().entries == shard.stats().tombstones == 0
    assert shard.put_many("outcomes", [entry("h", "t", 1)]) == 1  # the floor went too
