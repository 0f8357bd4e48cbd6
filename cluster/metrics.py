"""The fleet's Prometheus metrics.

Runtimes report cumulative counters to the directory after each run (`run_counters`:
decisions by layer and target, calls and latency by target and outcome, cache lookups per
tier, breaker states); shards count for themselves (their stats, and `ray.util.metrics`
inside the actors). `delegation serve --metrics-port P` exposes both with prometheus-client
through `FleetCollector`, which asks the fleet at most once per `refresh_s` per scrape.

A counter travels as a flat key, `name` then `label=value` items joined by `SEP`; a key
whose name starts with `gauge:` is a state (the newest report wins) rather than a count.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from cluster.directory import GAUGE
from cluster.stats import ShardReport

SEP = "\x1f"


def key(name: str, **labels: str) -> str:
    """The flat key of a counter with labels (sorted by label name)."""
    return SEP.join([name, *(f"{k}={labels[k]}" for k in sorted(labels))])


def parse_key(flat: str) -> tuple[str, dict[str, str]]:
    """Inverse of `key`; a malformed label is dropped."""
    name, *items = flat.split(SEP)
    labels = {}
    for item in items:
        label, sep, value = item.partition("=")
        if sep:
            labels[label] = value
    return name, labels


def _add(out: dict[str, float], flat: str, value: float) -> None:
    out[flat] = out.get(flat, 0.0) + value


def run_counters(runtime: Any, plans: Any = None) -> dict[str, float]:
    """What one run contributes: from its call records, plan store, L2 cache, L4 index and
    breakers."""
    out: dict[str, float] = {}
    for record in runtime.last_calls:
        _add(out, key("decisions", layer=record.layer, target=record.target), 1)
        _add(out, key("calls", target=record.target, outcome=record.outcome), 1)
        _add(out, key("latency_seconds_sum", target=record.target), record.latency_s)
        _add(out, key("latency_seconds_count", target=record.target), 1)
    store = plans if plans is not None else runtime.plans
    stats = store.stats()
    _add(out, key("cache_lookups", tier="l1", result="hit"), stats.hits)
    _add(out, key("cache_lookups", tier="l1", result="miss"), stats.misses)
    l2 = getattr(runtime, "l2", None)
    cache = l2.cache if l2 is not None else None
    if cache is not None:  # built on the run's first model call where L2 pays
        served = cache.stats()
        _add(out, key("cache_lookups", tier="l2", result="hit"),
             served.exact_hits + served.semantic_hits)
        _add(out, key("cache_lookups", tier="l2", result="miss"), served.misses)
    library = getattr(runtime, "library", None)
    if library is not None:
        index = library.index.stats()
        _add(out, key("cache_lookups", tier="l4", result="hit"), index.hits)
        _add(out, key("cache_lookups", tier="l4", result="miss"), index.lookups - index.hits)
    for target in runtime.registry.targets():
        state = str(runtime.health.breaker(target).state)
        out[key(GAUGE + "breaker", target=str(target), state=state)] = 1.0
    return out


class FleetCollector:
    """A prometheus-client collector over the fleet (see the module docstring).

    Args:
        fetch: returns (totals reported by runtimes, one `ShardReport` per shard).
        refresh_s: the longest a scrape reuses the previous answer.
        timer: monotonic clock.
    """

    def __init__(self, fetch: Callable[[], tuple[Mapping[str, float], Sequence[ShardReport]]],
                 *, refresh_s: float = 2.0, timer: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self.refresh_s = refresh_s
        self._timer = timer
        self._lock = threading.Lock()
        self._cached: tuple[float, Mapping[str, float], Sequence[ShardReport]] | None = None

    def _snapshot(self) -> tuple[Mapping[str, float], Sequence[ShardReport]]:
        with self._lock:
            now = self._timer()
            if self._cached is None or now - self._cached[0] >= self.refresh_s:
                totals, shards = self._fetch()
                self._cached = (now, totals, shards)
            return self._cached[1], self._cached[2]

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            SummaryMetricFamily,
        )

        totals, shards = self._snapshot()
        families: dict[str, Any] = {
            "decisions": CounterMetricFamily(
                "rtfs_decisions", "routed calls by deciding layer and target",
                labels=["layer", "target"]),
            "calls": CounterMetricFamily(
                "rtfs_calls", "routed calls by target and outcome (errors: outcome != ok)",
                labels=["target", "outcome"]),
            "cache_lookups": CounterMetricFamily(
                "rtfs_cache_lookups", "cache lookups by tier and result",
                labels=["tier", "result"]),
            GAUGE + "breaker": GaugeMetricFamily(
                "rtfs_breaker_state", "circuit state per target at the newest report",
                labels=["target", "state"]),
        }
        latency: dict[str, list[float]] = {}
        for flat, value in sorted(totals.items()):
            name, labels = parse_key(flat)
            if name in ("latency_seconds_sum", "latency_seconds_count"):
                slot = latency.setdefault(labels.get("target", ""), [0.0, 0.0])
                slot[name.endswith("_sum")] += value
                continue
            family = families.get(name)
            if family is not None:
                family.add_metric([labels.get(n, "") for n in family._labelnames], value)
        summary = SummaryMetricFamily("rtfs_call_latency_seconds",
                                      "routed call latency by target", labels=["target"])
        for target, (count, total) in sorted(latency.items()):
            summary.add_metric([target], count_value=int(count), sum_value=total)
        yield from families.values()
        yield summary
        yield from _shard_families(shards)


def _shard_families(shards: Sequence[ShardReport]) -> Iterator[Any]:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    up = GaugeMetricFamily("rtfs_shard_up", "1 if the cache shard answered", labels=["shard"])
    entries = GaugeMetricFamily("rtfs_shard_entries", "live entries", labels=["shard"])
    lookups = CounterMetricFamily("rtfs_shard_lookups", "shard lookups by result",
                                  labels=["shard", "result"])
    dropped = CounterMetricFamily("rtfs_shard_dropped", "entries dropped, by reason",
                                  labels=["shard", "reason"])
    restarts = CounterMetricFamily("rtfs_shard_restarts", "restarts by Ray", labels=["shard"])
    for r in shards:
        up.add_metric([r.name], 0.0 if r.down else 1.0)
        entries.add_metric([r.name], r.entries)
        lookups.add_metric([r.name, "hit"], r.hits)
        lookups.add_metric([r.name, "miss"], r.misses)
        dropped.add_metric([r.name, "evicted"], r.evictions)
        dropped.add_metric([r.name, "expired"], r.expirations)
        restarts.add_metric([r.name], r.restarts)
    yield from (up, entries, lookups, dropped, restarts)


def serve_metrics(collector: FleetCollector, host: str, port: int) -> tuple[Any, int]:
    """Serve `/metrics` on `host:port` (0: a free port) in a daemon thread; (server, port)."""
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry()
    registry.register(collector)
    server, _ = start_http_server(port, addr=host, registry=registry)
    return server, int(server.server_port)
