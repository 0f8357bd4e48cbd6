"""Federation across Ray nodes (`ray.cluster_utils.Cluster`): three nodes with different
custom resources, an arbiter on each, and only node b's arbiter has model X.

- A plan started elsewhere gets X's answer through federation, and `--explain` says so; the
  arbiter on node a, which lacks X, serves it too, by federating to b.
- A sensitive call, declared peer or not: zero requests reach the arbiter that records them.
- Two arbiters configured to forward to each other: bounded hops, no loop.
- An arbiter killed mid-call: the call goes to the other peer; one whose process dies is
  restarted by Ray and serves again; an arbiter serves concurrent calls.
- Node b killed (last): calls fall back or fail within their deadline, never hang, and the
  directory drops b within two heartbeats.

This module needs the driver to itself: it stops the shared single-node Ray first."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import ray

from cluster.actors import Fleet, ray_get, start_arbiter, start_fleet, stop_arbiter
from cluster.arbiter import ArbiterSpec
from cluster.errors import ClusterError
from cluster.federation import Federation
from cluster.peers import PeerProvider
from cluster.peers_ray import RayPeerTransport
from cluster.peers_wire import Advert
from delegation.config import load_config
from delegation.errors import ProviderUnavailable
from delegation.providers.sentiment import SentimentRulesProvider
from delegation.runtime import Runtime
from rtfs.deadline import Deadline
from rtfs.errors import RtfsError
from rtfs.printer import to_readable
from rtfs.router import RoutedCall
from rtfs.values import EMPTY_MAP, Keyword, Map
from tests.cluster.conftest import OBJECT_STORE_BYTES, require_loopback_listeners, shutdown_ray
from tests.cluster.peer_support import X_MODEL
from tests.cluster.processes import delegation

NAMESPACE = "federation"
TEXT = "what a lovely day"
HEAD: dict[str, Any] = {"num_cpus": 1, "object_store_memory": OBJECT_STORE_BYTES,
                        "node_ip_address": "127.0.0.1"}
COMMON = f"""
[delegation.cluster]
namespace = "{NAMESPACE}"

[delegation.federation]
heartbeat_s = 0.5
advert_ttl_s = 0.25
timeout_s = 5

[delegation.l2]
enabled = false
"""
ORIGIN = COMMON + '\n[delegation.security]\nallowed_peers = ["*"]\n'
LOOP = COMMON + """
[delegation.remote_providers.to-{peer}]
kind = "rtfs-peer"
arbiter = "{peer}"

[delegation.static_routes]
"ping" = "remote-to-{peer}"
"""
FALLBACK = ORIGIN + """
[delegation.remote_providers.to-b]
kind = "rtfs-peer"
arbiter = "b"
timeout_s = 5

[delegation.static_routes]
"x-or-local" = {{ target = "remote-to-b", fallback = "local-pure" }}
""".replace("{{", "{").replace("}}", "}")


def truth(text: str) -> Map:
    value = SentimentRulesProvider("truth").infer(text).value
    return Map((Keyword(k), v) for k, v in value.items())


@dataclass
class World:
    cluster: Any
    nodes: dict[str, Any]
    fleet: Fleet
    arbiters: dict[str, Any]
    home: Path

    def config(self, name: str, toml: str) -> Path:
        path = self.home / f"{name}.toml"
        path.write_text(toml)
        return path

    def start(self, name: str, toml: str, node: str) -> Any:
        path = self.config(name, toml)
        spec = ArbiterSpec(name, NAMESPACE, toml, str(path), str(self.home),
                           str(self.home / f"state-{name}"),
                           resources=((f"node_{node}", 0.01),))
        self.arbiters[name] = start_arbiter(spec, max_concurrency=4, timeout_s=120)
        return self.arbiters[name]

    def received(self, name: str) -> int:
        stats = ray_get(self.arbiters[name].stats.remote(), timeout_s=30, name=name)
        return int(stats["received"])

    def listed(self) -> dict[str, Advert]:
        found = ray_get(self.fleet.directory.arbiters.remote(), timeout_s=30, name="directory")
        return {a.arbiter: a for a in map(Advert.from_list, found)}


def wait_until(check: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    """Poll `check` (a bounded wait for the cluster to reach a state, not a timing check)."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    from ray.cluster_utils import Cluster

    shutdown_ray()
    home = tmp_path_factory.mktemp("federation")
    cluster = Cluster(initialize_head=True, head_node_args={
        **HEAD, "include_dashboard": False, "resources": {"node_a": 1}})
    ray.init(address=cluster.address, namespace=NAMESPACE, log_to_driver=False)
    fleet = start_fleet(NAMESPACE, 1, 1)  # before the other nodes: its shard is on node a
    nodes = {"a": cluster.head_node,
             "b": cluster.add_node(**HEAD, resources={"node_b": 1}),
             "c": cluster.add_node(**HEAD, resources={"node_c": 1})}
    cluster.wait_for_nodes()
    require_loopback_listeners(os.getpid(), "the three-node Ray")
    made = World(cluster, nodes, fleet, {}, home)
    try:
        made.start("a", ORIGIN, "a")
        made.start("b", COMMON + X_MODEL, "b")
        made.start("c", COMMON, "c")
        wait_until(lambda: set(made.listed()) >= {"a", "b", "c"}, "every arbiter advertised")
        yield made
    finally:
        for handle in made.arbiters.values():
            stop_arbiter(handle)
        fleet.stop()
        ray.shutdown()
        cluster.shutdown()


def test_each_arbiter_runs_on_its_node_and_advertises_what_it_has(world: World) -> None:
    listed = world.listed()
    for name in ("a", "b", "c"):
        info = ray_get(world.arbiters[name].info.remote(), timeout_s=30, name=name)
        assert info["node_id"] == world.nodes[name].node_id == listed[name].node
    assert listed["b"].serves == ("x",) and listed["b"].models == ("x-model",)
    assert "x" not in listed["a"].serves and "x" not in listed["c"].serves
    assert listed["b"].resources == (("node_b", 0.01),)


def test_a_plan_gets_x_from_the_only_node_that_has_it_and_explain_says_so(
        world: World) -> None:
    (world.home / "plan.rtfs").write_text(f'(call :x "{TEXT}")\n')
    before = world.received("b")
    done = delegation("run", str(world.home / "plan.rtfs"), "--cluster", world.cluster.address,
                      "--config", str(world.config("origin", ORIGIN)), "--explain",
                      "--state-dir", str(world.home / "state-origin"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines()[0] == to_readable(truth(TEXT))
    row = next(line.split() for line in done.stdout.splitlines() if line.startswith("1  x "))
    assert row[2:4] == ["RemoteModel(peer:b)", "federation"]
    assert "x: nothing on this node provides x; federated to arbiter b" in done.stdout
    assert world.received("b") == before + 1


def test_peers_lists_every_arbiter_as_one_json_object(world: World) -> None:
    done = delegation("peers", "--cluster", world.cluster.address, "--config",
                      str(world.config("origin", ORIGIN)), "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    found = {a["name"]: a for a in json.loads(done.stdout)["arbiters"]}
    assert {"a", "b", "c"} <= set(found)
    assert found["b"]["serves"] == ["x"] and found["b"]["healthy"] is True
    assert found["b"]["node"] == world.nodes["b"].node_id
    assert found["b"]["resources"] == {"node_b": 0.01}


def test_an_arbiter_without_x_serves_it_by_federating_to_b(world: World) -> None:
    before = {name: world.received(name) for name in ("a", "b", "c")}
    value = forward(PeerProvider("to-a", "a", RayPeerTransport("rtfs-directory", NAMESPACE)),
                    "x", TEXT)
    assert value == truth(TEXT)
    after = {name: world.received(name) for name in ("a", "b", "c")}
    assert after == {"a": before["a"] + 1, "b": before["b"] + 1, "c": before["c"]}


def test_an_arbiter_whose_process_dies_is_restarted_and_serves_again(world: World) -> None:
    wait_until(lambda: world.listed()["a"].served >= 1, "a advertises the call it served")
    before = ray_get(world.arbiters["a"].info.remote(), timeout_s=30, name="a")
    os.kill(before["pid"], signal.SIGKILL)

    def restarted() -> bool:
        try:
            info = ray_get(world.arbiters["a"].info.remote(), timeout_s=5, name="a")
        except ClusterError:
            return False
        return bool(info["pid"] != before["pid"])

    wait_until(restarted, "Ray restarts arbiter a")
    assert world.listed()["a"].served == 0  # the new process advertised as it came back
    value = forward(PeerProvider("to-a", "a", RayPeerTransport("rtfs-directory", NAMESPACE)),
                    "x", TEXT)
    assert value == truth(TEXT) and world.received("a") == 1  # a new process, counting anew


def forward(provider: PeerProvider, symbol: str, *args: Any) -> Any:
    from rtfs.router import CallKind

    call = RoutedCall(symbol, CallKind.CAPABILITY, None, None, EMPTY_MAP, args, lambda: None)
    return provider.forward(call)[0]


@pytest.mark.parametrize("extra", ["", """
[delegation.remote_providers.to-b]
kind = "rtfs-peer"
arbiter = "b"
capabilities = ["x"]
"""], ids=["discovered", "declared"])
def test_a_sensitive_call_reaches_no_peer(world: World, extra: str) -> None:
    toml = COMMON + extra + '\n[delegation.security]\nallowed_peers = ["*"]\nsensitive = ["x"]\n'
    (world.home / "secret.rtfs").write_text('(call :x "the secret")\n')
    before = {name: world.received(name) for name in ("a", "b", "c")}
    done = delegation("run", str(world.home / "secret.rtfs"), "--cluster",
                      world.cluster.address, "--config", str(world.config("secret", toml)),
                      "--explain", "--state-dir", str(world.home / "state-secret"))
    assert done.returncode == 1 and "the secret" not in done.stdout
    assert "sensitive" in done.stdout
    assert {name: world.received(name) for name in ("a", "b", "c")} == before


def test_two_arbiters_forwarding_to_each_other_do_not_loop(world: World) -> None:
    world.start("p", LOOP.format(peer="q"), "a")
    world.start("q", LOOP.format(peer="p"), "c")
    provider = PeerProvider("to-p", "p", RayPeerTransport("rtfs-directory", NAMESPACE))
    with pytest.raises(ProviderUnavailable, match="not sending it round a loop"):
        forward(provider, "ping", "hi")
    assert (world.received("p"), world.received("q")) == (1, 1)


SLOW = COMMON + """
[delegation.local_models.slow-model]
kind = "command"
command = ["./slow-model"]
capabilities = ["slow"]
"""


def test_a_peer_that_dies_mid_call_hands_the_call_to_another(world: World) -> None:
    script = world.home / "slow-model"
    script.write_text("#!/bin/sh\nsleep 2\ncat\n")
    script.chmod(0o755)
    world.start("d1", SLOW, "a")
    world.start("d2", SLOW, "c")
    wait_until(lambda: {"d1", "d2"} <= {n for n, a in world.listed().items()
                                        if "slow" in a.serves}, "d1 and d2 advertise slow")
    cfg = load_config(world.config("mid", ORIGIN), state_dir=world.home / "state-mid")
    runtime = Runtime(cfg, federation=Federation.for_config(
        cfg, RayPeerTransport("rtfs-directory", NAMESPACE)))
    result: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: result.update(
        value=runtime.run('(call :slow "echo me")').value))
    thread.start()
    busy: list[str] = []

    def one_is_busy() -> bool:
        busy[:] = [n for n in ("d1", "d2") if ray_get(world.arbiters[n].stats.remote(),
                                                      timeout_s=30, name=n)["in_flight"]]
        return bool(busy)

    wait_until(one_is_busy, "a peer busy with the call")
    ray.kill(world.arbiters[busy[0]], no_restart=True)  # it dies mid-call
    thread.join(60)
    assert not thread.is_alive() and result["value"] == "echo me"
    other = ({"d1", "d2"} - set(busy)).pop()
    (call,) = runtime.last_calls
    assert call.target == f"RemoteModel(peer:{other})"
    assert f"RemoteModel(peer:{busy[0]}) failed, ran on RemoteModel(peer:{other})" in call.reason


def test_an_arbiter_serves_calls_concurrently(world: World) -> None:
    provider = PeerProvider("to-d2", "d2", RayPeerTransport("rtfs-directory", NAMESPACE))
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(forward, provider, "slow", f"call {i}") for i in range(4)]
        wait_until(lambda: ray_get(world.arbiters["d2"].stats.remote(), timeout_s=30,
                                   name="d2")["in_flight"] >= 2, "two calls in flight at once")
        assert [f.result(timeout=120) for f in futures] == [f"call {i}" for i in range(4)]


def test_when_node_b_dies_calls_fall_back_or_fail_within_their_deadline(
        world: World) -> None:
    cfg = load_config(world.config("after", FALLBACK), state_dir=world.home / "state-after")
    transport = RayPeerTransport("rtfs-directory", NAMESPACE)
    runtime = Runtime(cfg, federation=Federation.for_config(cfg, transport))
    program = '(defn x-or-local [s] (str "local: " s))\n(x-or-local "hi")'
    assert runtime.run(f'(call :x "{TEXT}")').value == truth(TEXT)  # b serves, for now
    world.cluster.remove_node(world.nodes["b"])
    for source, falls_back in ((program, True), (f'(call :x "{TEXT}")', False)) * 2:
        deadline = Deadline.after(30.0)
        try:
            value = runtime.run(source, deadline=deadline).value
        except RtfsError as err:  # x: nothing else has it
            assert not falls_back, err
            assert not deadline.expired()
            reason = runtime.last_calls[-1].reason + runtime.last_calls[-1].detail
            assert "arbiter b" in reason or "no peer advertises x" in reason
        else:
            assert falls_back and value == "local: hi"
    wait_until(lambda: "b" not in world.listed(), "the directory drops b")
    deadline = Deadline.after(30.0)
    with pytest.raises(RtfsError, match="unknown capability :x"):
        runtime.run(f'(call :x "{TEXT}")', deadline=deadline)
    (call,) = runtime.last_calls
    assert call.layer == "default" and call.attempts == []  # no peer was even tried
    assert call.reason.endswith("not federated: no peer advertises x")
    assert runtime.run(program).value == "local: hi"


def test_a_peer_the_gcs_cannot_find_costs_the_calls_timeout(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the head dead, `ray.get_actor` waits 60 s for the GCS: a peer call that must
    first find its arbiter (or the directory) fails within its own timeout instead."""
    from cluster import lookup
    from cluster.errors import ArbiterTimeout

    answered = threading.Event()
    monkeypatch.setattr(lookup.ray, "get_actor", lambda name, namespace: answered.wait(60))
    transport = RayPeerTransport("rtfs-directory", NAMESPACE, timeout_s=0.5)
    try:
        started = time.monotonic()
        with pytest.raises(ArbiterTimeout, match="is the Ray head down"):
            transport.call("a", b"", 0.5)
        with pytest.raises(ArbiterTimeout, match="is the Ray head down"):
            transport._fetch_adverts()
        assert time.monotonic() - started < 5
    finally:
        answered.set()
