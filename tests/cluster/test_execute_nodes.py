"""Remote steps on a two-node Ray (`ray.cluster_utils.Cluster`): a resource chooses the node,
the step's deadline and the L4 keys hold there, and a step whose node dies fails instead of
hanging.

This module needs the driver to itself: it stops the shared single-node Ray first (the next
module that needs it starts it again)."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import ray

from cluster.steps import StepLimits, StepReply, StepRequest, StepSettings
from cluster.steptasks import RayStepExecutor, StepUnavailable, publish_policy
from delegation.config import parse_config
from delegation.errors import ProviderTimeout, ProviderUnavailable
from delegation.runtime import Runtime
from rtfs.errors import HostError
from tests.cluster.conftest import OBJECT_STORE_BYTES, require_loopback_listeners, shutdown_ray
from tests.cluster.publishing import Fleet

NODE: dict[str, Any] = {"num_cpus": 1, "object_store_memory": OBJECT_STORE_BYTES,
                        "node_ip_address": "127.0.0.1"}
RUNAWAY = "(reduce + (map (fn [i] (reduce + (range 10000000))) (range 1000)))"


@pytest.fixture(scope="module")
def nodes() -> Iterator[tuple[Any, Any, Any]]:
    from ray.cluster_utils import Cluster

    shutdown_ray()
    cluster = Cluster(initialize_head=True, head_node_args={
        **NODE, "include_dashboard": False, "resources": {"head-node": 1}})
    gpu = cluster.add_node(**NODE, resources={"gpu-node": 1})
    ray.init(address=cluster.address, namespace="execute-nodes", log_to_driver=False)
    require_loopback_listeners(os.getpid(), "the two-node Ray")
    try:
        yield cluster, cluster.head_node, gpu
    finally:
        ray.shutdown()
        cluster.shutdown()


@pytest.fixture(scope="module")
def fleet(nodes: tuple[Any, Any, Any], tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[tuple[Fleet, str]]:
    fleet = Fleet(Path(tmp_path_factory.mktemp("execute-nodes")), sensitive=("private-*",))
    namespace = f"nodes-{uuid.uuid4().hex[:8]}"
    settings = StepSettings(fleet.config_text(), "<test>", str(fleet.root),
                            str(fleet.root / "node-state"), StepLimits())
    policy = publish_policy(settings, namespace)
    yield fleet, namespace
    ray.kill(policy, no_restart=True)


def on(fleet: tuple[Fleet, str], resource: str) -> RayStepExecutor:
    return RayStepExecutor(fleet[1], resources={resource: 0.001}, grace_s=60.0)


def holding(until: Callable[[float], bool], timeout_s: float = 60.0) -> None:
    """Wait until the amount of gpu-node held by running steps satisfies `until`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        held = ray.cluster_resources().get("gpu-node", 0.0) - ray.available_resources().get(
            "gpu-node", 0.0)
        if until(held):
            return
        time.sleep(0.05)
    raise AssertionError("no step took its share of gpu-node in time")


def test_a_resource_chooses_the_node(nodes: tuple[Any, Any, Any],
                                     fleet: tuple[Fleet, str]) -> None:
    _, head, gpu = nodes
    assert head.node_id != gpu.node_id
    for _ in range(3):
        assert on(fleet, "gpu-node").run(StepRequest("(+ 1 2)")).node == gpu.node_id
        assert on(fleet, "head-node").run(StepRequest("(+ 1 2)")).node == head.node_id


def test_the_deadline_and_the_keys_hold_on_the_chosen_node(nodes: tuple[Any, Any, Any],
                                                           fleet: tuple[Fleet, str]) -> None:
    _, _, gpu = nodes
    gpu_node = on(fleet, "gpu-node")
    stopped = gpu_node.run(StepRequest(RUNAWAY, deadline_s=1.0))
    assert (stopped.node, stopped.error_type) == (gpu.node_id, "DeadlineExceeded")
    publisher = fleet[0]
    bad = publisher.publish("(defn twice-untrusted [x] (* 2 x))", "twice-untrusted",
                            publisher.untrusted)
    refused = gpu_node.run(StepRequest(interface=bad.interface, blob=bad.blob, args=("4",)))
    assert (refused.node, refused.error_type) == (gpu.node_id, "UntrustedCode")
    good = publisher.publish("(defn twice-trusted [x] (* 2 x))", "twice-trusted",
                             publisher.trusted)
    ran = gpu_node.run(StepRequest(interface=good.interface, blob=good.blob, args=("4",)))
    assert (ran.node, ran.value) == (gpu.node_id, "8")


def test_a_plans_step_goes_where_its_provider_says(fleet: tuple[Fleet, str],
                                                  tmp_path: Path) -> None:
    def runtime(resource: str) -> Runtime:
        return Runtime(parse_config(f"""
[delegation.remote_providers.gpu]
kind = "ray-rtfs"
resources = ["{resource}"]
namespace = "{fleet[1]}"
""", base_dir=tmp_path, state_dir=tmp_path / resource))

    on_gpu = runtime("gpu-node")
    assert on_gpu.run('(call :remote-rtfs.execute "(* 6 7)")').value == 42
    outcome: list[BaseException] = []

    def runaway() -> None:
        try:
            on_gpu.run(f"(call :remote-rtfs.execute {json.dumps(RUNAWAY)} {{:deadline-ms 4000}})")
        except BaseException as err:  # noqa: BLE001 - checked below
            outcome.append(err)

    caller = threading.Thread(target=runaway)
    caller.start()
    holding(lambda held: held > 0)  # the plan's step holds its share of gpu-node
    caller.join(120)
    [stopped] = outcome
    assert isinstance(stopped.__cause__, ProviderTimeout)
    with pytest.raises(HostError) as info:
        runtime("tpu-node").run('(call :remote-rtfs.execute "1")')
    assert isinstance(info.value.__cause__, ProviderUnavailable)
    assert "no alive node offers" in str(info.value.__cause__)


def test_a_step_whose_node_dies_fails_instead_of_hanging(nodes: tuple[Any, Any, Any],
                                                         fleet: tuple[Fleet, str]) -> None:
    cluster, _, gpu = nodes
    gpu_node = on(fleet, "gpu-node")
    assert gpu_node.run(StepRequest("1")).ok  # a worker is up there
    outcome: list[StepReply | BaseException] = []

    def long_step() -> None:
        try:
            outcome.append(gpu_node.run(StepRequest(RUNAWAY, deadline_s=60.0)))
        except BaseException as err:  # noqa: BLE001 - checked below
            outcome.append(err)

    caller = threading.Thread(target=long_step)
    caller.start()
    holding(lambda held: held > 0)  # the step holds its share of gpu-node: it runs there
    cluster.remove_node(gpu)
    caller.join(150)
    assert not caller.is_alive()
    [result] = outcome
    assert isinstance(result, StepUnavailable), result
    with pytest.raises(StepUnavailable, match="no alive node offers"):
        on(fleet, "gpu-node").run(StepRequest("1"))
