"""Two Ray nodes (`ray.cluster_utils.Cluster`): every entry has a copy on each node, and
losing a node loses no plan: its shards are down, traffic goes around them.

This module needs the driver to itself: it stops the shared single-node Ray first (the next
module that needs it starts it again)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import pytest
import ray

from cluster.actors import Fleet, ray_get, start_fleet
from cluster.planstore import ShardedPlanStore
from cluster.stats import fleet_report
from delegation.l1 import new_plan
from delegation.targets import LocalModel
from tests.cluster.conftest import OBJECT_STORE_BYTES, require_loopback_listeners, shutdown_ray

AGENTS = [f"agent-{i}" for i in range(200)]
NODE: dict[str, Any] = {"num_cpus": 2, "object_store_memory": OBJECT_STORE_BYTES,
        "node_ip_address": "127.0.0.1"}


@pytest.fixture(scope="module")
def nodes() -> Iterator[tuple[Any, Any]]:
    from ray.cluster_utils import Cluster

    shutdown_ray()
    cluster = Cluster(initialize_head=True, head_node_args={**NODE, "include_dashboard": False})
    worker = cluster.add_node(**NODE)
    ray.init(address=cluster.address, namespace="multinode", log_to_driver=False)
    require_loopback_listeners(os.getpid(), "the two-node Ray")
    try:
        yield cluster, worker
    finally:
        ray.shutdown()
        cluster.shutdown()


@pytest.fixture(scope="module")
def fleet(nodes: tuple[Any, Any]) -> Iterator[Fleet]:
    made = start_fleet(f"multi-{uuid.uuid4().hex[:8]}", 4, 2)
    yield made
    made.stop()


def node_of(fleet: Fleet, shard: str) -> str:
    return ray_get(fleet.shards[shard].info.remote(), timeout_s=30, name=shard)["node_id"]


def test_every_entry_has_a_copy_on_each_node(nodes: tuple[Any, Any], fleet: Fleet) -> None:
    alive = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    domains = {s.name: s.domain for s in fleet.topology.shards}
    assert set(domains.values()) == alive and len(alive) == 2
    assert all(node_of(fleet, name) == domain for name, domain in domains.items())
    placement = fleet.client().placement
    for agent in AGENTS:
        first, second = placement.replicas(agent)
        assert domains[first] != domains[second]


def test_losing_a_node_loses_no_plan(nodes: tuple[Any, Any], fleet: Fleet) -> None:
    cluster, worker = nodes
    writer = ShardedPlanStore(fleet.client(timeout_s=10.0))
    for i, agent in enumerate(AGENTS):
        writer.put(agent, "t", new_plan(LocalModel(f"m{i}"), 1.0, "multi-node"))
    writer.close()
    lost = {s.name for s in fleet.topology.shards if s.domain == worker.node_id}
    assert lost and len(lost) < len(fleet.topology.shards)
    cluster.remove_node(worker)
    with closing(ShardedPlanStore(fleet.client(timeout_s=5.0))) as reader:
        for i, agent in enumerate(AGENTS):  # every plan is still there: its copy on the head
            plan = reader.get(agent, "t")
            assert plan is not None and plan.target == LocalModel(f"m{i}"), agent
    # The lost node's shards are down (they are pinned to it); the others serve, and
    # writes go around the lost ones.
    reports = {r.name: r for r in fleet_report(fleet.client(timeout_s=5.0), {})}
    assert {name for name, r in reports.items() if r.down} == lost
    with closing(ShardedPlanStore(fleet.client(timeout_s=5.0))) as writer:
        writer.put("after", "t", new_plan(LocalModel("late"), 1.0, "after the loss"))
    with closing(ShardedPlanStore(fleet.client(timeout_s=5.0))) as reader:
        found = reader.get("after", "t")
    assert found is not None and found.target == LocalModel("late")
