"""Metrics: what a run reports, how the directory sums reports, what Prometheus scrapes."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from cluster.directory import ClusterDirectory
from cluster.metrics import FleetCollector, key, parse_key, run_counters
from cluster.stats import ShardReport
from cluster.topology import ShardInfo, Topology
from delegation.config import default_config
from delegation.runtime import Runtime
from delegation.testing import FakeClock

PLAN = '(defn twice [x] (* 2 x)) (twice 4) (call :tone "good") (call :tone "fine") ' \
       '(sentiment "a lovely day")'


def test_a_run_reports_decisions_calls_cache_tiers_and_breakers(tmp_path: Path) -> None:
    runtime = Runtime(default_config(tmp_path, state_dir=tmp_path / "state"))
    runtime.run(PLAN)
    counters = run_counters(runtime)
    rules = "LocalModel(sentiment-rules)"
    assert counters[key("decisions", layer="capability", target=rules)] == 1
    assert counters[key("decisions", layer="l1-cache", target=rules)] == 1
    assert counters[key("decisions", layer="static-exact", target=rules)] == 1
    assert counters[key("calls", target=rules, outcome="ok")] == 3
    assert counters[key("latency_seconds_count", target=rules)] == 3
    assert counters[key("latency_seconds_sum", target=rules)] > 0
    assert counters[key("cache_lookups", tier="l1", result="hit")] >= 1
    assert counters[key("cache_lookups", tier="l4", result="miss")] >= 1
    assert counters[key("gauge:breaker", target=rules, state="closed")] == 1
    assert parse_key(key("x", b="2", a="1")) == ("x", {"a": "1", "b": "2"})


def test_states_follow_the_newest_report_and_counts_add_up() -> None:
    directory = ClusterDirectory(Topology("t", (ShardInfo("s0"),)))
    open_ = key("gauge:breaker", target="RemoteModel(x)", state="open")
    directory.report("run-1", {open_: 1, key("calls", target="t", outcome="ok"): 2})
    directory.report("run-2", {open_: 0, key("calls", target="t", outcome="ok"): 3})
    totals = directory.totals()
    assert totals[open_] == 0 and totals[key("calls", target="t", outcome="ok")] == 5


def test_the_collector_exposes_the_fleet_and_asks_it_at_most_once_per_refresh() -> None:
    clock = FakeClock(0.0)
    asked: list[int] = []
    totals = {key("decisions", layer="l1-cache", target="LocalPure"): 4.0,
              key("latency_seconds_sum", target="LocalPure"): 0.5,
              key("latency_seconds_count", target="LocalPure"): 4.0,
              key("gauge:breaker", target="RemoteModel(x)", state="open"): 1.0}
    shards = [ShardReport("s0", entries=7, hits=3, misses=1, restarts=2),
              ShardReport("s1", down=True)]

    def fetch() -> tuple[dict[str, float], list[ShardReport]]:
        asked.append(1)
        return totals, shards

    collector = FleetCollector(fetch, refresh_s=2.0, timer=clock)
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    for line in ('rtfs_decisions_total{layer="l1-cache",target="LocalPure"} 4.0',
                 'rtfs_call_latency_seconds_count{target="LocalPure"} 4.0',
                 'rtfs_call_latency_seconds_sum{target="LocalPure"} 0.5',
                 'rtfs_breaker_state{state="open",target="RemoteModel(x)"} 1.0',
                 'rtfs_shard_up{shard="s0"} 1.0', 'rtfs_shard_up{shard="s1"} 0.0',
                 'rtfs_shard_entries{shard="s0"} 7.0',
                 'rtfs_shard_lookups_total{result="hit",shard="s0"} 3.0',
                 'rtfs_shard_restarts_total{shard="s0"} 2.0'):
        assert line in text.splitlines(), line
    generate_latest(registry)
    assert len(asked) == 1
    clock.advance(2.0)
    generate_latest(registry)
    assert len(asked) == 2
