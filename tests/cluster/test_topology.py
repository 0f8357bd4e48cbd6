"""Rendezvous placement: deterministic, balanced, minimal movement, distinct domains."""

from __future__ import annotations

from collections import Counter

import pytest

from cluster.topology import (
    Placement,
    ShardInfo,
    Topology,
    default_replication,
    rendezvous_order,
    score,
)

AGENTS = [f"agent-{i}" for i in range(4000)]


def topo(n: int, replication: int = 1, domains: int = 0) -> Topology:
    return Topology("t", tuple(ShardInfo(f"shard-{i}", f"node-{i % domains}" if domains else "")
                               for i in range(n)), replication)


def test_the_primary_is_the_highest_weight_and_the_order_covers_every_shard() -> None:
    placement = Placement(topo(5))
    for agent in AGENTS[:200]:
        order = placement.order(agent)
        assert sorted(order) == sorted(placement.topology.names)
        weights = [score(s, agent) for s in order]
        assert weights == sorted(weights, reverse=True)


def test_agents_spread_evenly_over_the_shards() -> None:
    counts = Counter(Placement(topo(4)).order(a)[0] for a in AGENTS)
    assert set(counts) == {f"shard-{i}" for i in range(4)}
    assert all(0.2 < n / len(AGENTS) < 0.3 for n in counts.values()), counts


def test_removing_a_shard_moves_only_the_agents_it_held() -> None:
    before = Placement(topo(5))
    after = Placement(Topology("t", tuple(s for s in before.topology.shards
                                          if s.name != "shard-2"), 1))
    moved = [a for a in AGENTS if before.order(a)[0] != after.order(a)[0]]
    assert moved and all(before.order(a)[0] == "shard-2" for a in moved)
    # ... and each goes where a client that skips shard-2 would look next.
    assert all(after.order(a)[0] == before.order(a)[1] for a in moved)


def test_replicas_take_distinct_domains_first() -> None:
    placement = Placement(topo(6, replication=2, domains=2))  # shard-i on node-(i % 2)
    domains = {s.name: s.domain for s in placement.topology.shards}
    for agent in AGENTS[:500]:
        a, b = placement.replicas(agent)
        assert domains[a] != domains[b]


def test_more_copies_than_domains_fill_by_weight() -> None:
    shards = (ShardInfo("a", "n1"), ShardInfo("b", "n1"), ShardInfo("c", "n1"))
    order = rendezvous_order(shards, "agent", 2)
    assert len(set(order[:2])) == 2 and sorted(order) == ["a", "b", "c"]


def test_the_memo_answers_the_same_and_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    import cluster.topology as module

    monkeypatch.setattr(module, "MEMO_MAX", 10)
    placement = Placement(topo(3, replication=2))
    first = [placement.order(a) for a in AGENTS[:50]]
    assert [placement.order(a) for a in AGENTS[:50]] == first
    assert len(placement._memo) <= 10


def test_topology_validation_and_round_trip() -> None:
    t = topo(3, replication=2, domains=2)
    assert Topology.from_list(t.to_list()) == t
    with pytest.raises(ValueError, match="at least one"):
        Topology("t", (), 1)
    with pytest.raises(ValueError, match="duplicate"):
        Topology("t", (ShardInfo("a"), ShardInfo("a")), 1)
    with pytest.raises(ValueError, match="replication"):
        Topology("t", (ShardInfo("a"),), 2)
    with pytest.raises(TypeError):
        Topology.from_list(["t", "2", []])
    assert [default_replication(n) for n in (1, 2, 5)] == [1, 2, 2]
