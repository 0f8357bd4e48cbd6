"""L2 and L3 on the fleet inside runtimes: two nodes built with `shared_state` (what
`delegation run --cluster` gets from `connect()`) over in-process shards. The second node is
served by the first's answers (an L2 hit from the fleet) and decides by what the first
learned in the same context (L3); sensitive answers never reach the shards; the fleet's
parts are the caller's, so nothing of them is written to the node's state directory."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

from cluster.config import ClusterConfig
from cluster.connect import shared_state
from cluster.metrics import key, run_counters
from cluster.shard import CacheShard
from cluster.topology import Placement, ShardInfo, Topology
from cluster.wire import Entry
from delegation.config import parse_config
from delegation.extensions import SharedState
from delegation.runtime import CONTEXTS_FILE, L2_ENTRIES_FILE, Runtime
from tests.cluster.support import LocalFleet
from tests.delegation.l2.test_integration import ENV, faq_models

CACHES = ('[delegation.context]\ntenant = "acme"\n'
          '[delegation.l2]\nlocal_min_latency_ms = 0\nshadow_rate = 0\n')
PROGRAM = ('[(call :answer "How do I reset my password?")'
           ' (call :answer "how can I reset my password")]')


def fleet_now() -> LocalFleet:
    """In-process shards on the real clocks (the nodes' stores use them)."""
    return LocalFleet(time.monotonic, wall_start=time.time())


def node(tmp_path: Path, fleet: LocalFleet, name: str, text: str) -> tuple[Runtime,
                                                                            SharedState]:
    config = parse_config(text, base_dir=tmp_path, state_dir=tmp_path / name)
    state = shared_state(config, ClusterConfig(), fleet.client(), writer=name)
    runtime = Runtime(config, environ=ENV, plans=state.plans, learner=state.learner,
                      library=state.library, l2_store=state.l2_store, l3=state.l3)
    return runtime, state


def test_a_second_node_is_served_and_decided_by_what_the_first_learned(tmp_path: Path) -> None:
    fleet = fleet_now()
    text = faq_models(tmp_path) + CACHES
    first, first_state = node(tmp_path, fleet, "node-a", text)
    try:
        ran = first.run(PROGRAM)
    finally:
        first_state.close()
    assert [c.l2 for c in ran.calls] == ["stored", "stored"]
    assert all("untried here" in c.reason for c in ran.calls)
    second, second_state = node(tmp_path, fleet, "node-b", text)
    fleet.transport.requests.clear()
    try:
        served = second.run(PROGRAM)
    finally:
        second_state.close()
    assert [c.layer for c in served.calls] == ["l3-context", "l3-context"]
    assert all("mean reward" in c.reason for c in served.calls)  # the fleet's tables
    assert [c.target for c in served.calls] == ["LocalModel(fast)"] * 2
    assert [c.l2 for c in served.calls] == ["semantic", "exact"]
    assert list(served.value) == [ran.value[1], ran.value[1]]  # nothing ran on node b
    state = tmp_path / "node-b"
    assert not (state / CONTEXTS_FILE).exists() and not (state / L2_ENTRIES_FILE).exists()
    assert second_state.l2_store.round_trips == 1  # the semantic lookup; the repeat is local
    counters = run_counters(second)  # what the fleet's metrics get from this run
    assert counters[key("cache_lookups", tier="l2", result="hit")] == 2


def test_sensitive_answers_never_reach_the_shards(tmp_path: Path) -> None:
    fleet = fleet_now()
    text = faq_models(tmp_path) + textwrap.dedent("""
        [delegation.static_routes]
        "private-answer" = "local-slow"
        "answer" = "local-slow"
        [delegation.security]
        sensitive = ["private-*"]
        """)
    runtime, state = node(tmp_path, fleet, "node-a", text)
    try:
        result = runtime.run('[(private-answer "my account number is 1234 5678")'
                             ' (answer "the public faq")]')
        again = runtime.run('(private-answer "my account number is 1234 5678")')
    finally:
        state.close()
    assert [c.l2 for c in result.calls] == ["-", "stored"]  # unmeasured: not looked up
    assert again.calls[0].l2 == "miss"  # never looked up in a shared tier: the call ran
    assert any("never looked up in a shared tier" in n for n in again.calls[0].notes)
    values = [e.value for shard in fleet.shards.values()
              for ns, e in everything(shard) if ns == "l2"]
    assert len(values) == 2  # the public answer, on its two replicas
    assert all(b"the public faq" in v and b"1234" not in v for v in values if v)


def everything(shard: CacheShard) -> list[tuple[str, Entry]]:
    """Every record a shard holds, read directly (a placement where it holds every agent)."""
    records, _, _ = shard.dump_for(shard.name, Placement(Topology(
        "all", (ShardInfo(shard.name),), 1)))
    return records
