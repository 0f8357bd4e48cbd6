"""decide() latency per layer, against cachetools.TTLCache.get measured in the same run.

    python bench/bench_decide.py [--batches N]

Each sample is the mean of a batch of 100 decisions (timing single calls would mostly measure
the clock); the table gives p50 and p99 over the batches, in microseconds, for the bare
`StaticDelegationEngine` and for the full chain the runtime uses
(Resilient(SecurityAware(Static))). The last lines compare a call routed to LocalPure with the
same call made directly in the VM. Not a test: compare numbers within one run.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import cachetools

from delegation.config import parse_config
from delegation.context import CallContext
from delegation.engine import (
    ResilientDelegationEngine,
    SecurityAwareDelegationEngine,
    StaticDelegationEngine,
)
from delegation.health import HealthMonitor
from delegation.l1 import L1PlanCache, new_plan
from delegation.providers import build_registry
from delegation.runtime import Runtime
from delegation.targets import LocalModel

CONFIG = """
[delegation.static_routes]
"sentiment" = "local-sentiment-rules"
"ai-*" = "local-summarizer"
"doc-*-v[0-9]" = "local-summarizer"
"+" = "local-pure"
[delegation.local_models.sentiment-rules]
kind = "sentiment-rules"
[delegation.local_models.summarizer]
kind = "extractive-summarizer"
[delegation.l4]
store = "memory://bench"
"""
BATCH = 100


def percentiles(fn: Callable[[], object], batches: int) -> tuple[float, float]:
    samples = []
    for _ in range(batches):
        start = time.perf_counter_ns()
        for _ in range(BATCH):
            fn()
        samples.append((time.perf_counter_ns() - start) / BATCH / 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=2000)
    args = parser.parse_args()
    config = parse_config(CONFIG)
    plans = L1PlanCache(ttl_s=3600)
    for i in range(10_000):
        plans.put(f"fn{i}", "00000000000000ff", new_plan(LocalModel("summarizer"), 0.9, "bench"))
    plans.put("planned", "00000000000000ff", new_plan(LocalModel("summarizer"), 0.9, "bench"))
    static = StaticDelegationEngine(config, plans=plans)
    health = HealthMonitor(build_registry(config, {}))
    full = ResilientDelegationEngine(SecurityAwareDelegationEngine(static, config, health), health)
    ctx = {name: CallContext(name, 0x0F, 0xF0) for name in
           ("sentiment", "ai-chat", "planned", "unknown")}
    ttl = cachetools.TTLCache(maxsize=10_000, ttl=3600)
    for i in range(10_000):
        ttl[("fn", i)] = i
    rows = [
        ("static exact", "sentiment"), ("static glob", "ai-chat"), ("L1 hit", "planned"),
        ("fallback (default)", "unknown"),
    ]
    print(f"{'decide() by layer':<28} {'static p50':>10} {'p99':>7} {'full p50':>9} {'p99':>7}")
    for label, name in rows:
        assert static.decide(ctx[name]).layer.value != "" and full.decide(ctx[name])
        s50, s99 = percentiles(lambda c=ctx[name]: static.decide(c), args.batches)
        f50, f99 = percentiles(lambda c=ctx[name]: full.decide(c), args.batches)
        print(f"{label:<28} {s50:>10.2f} {s99:>7.2f} {f50:>9.2f} {f99:>7.2f}")
    t50, t99 = percentiles(lambda: ttl.get(("fn", 5000)), args.batches)
    print(f"{'cachetools.TTLCache.get':<28} {t50:>10.2f} {t99:>7.2f}   (yardstick, same run)")
    print("\ngoal: p50 <= 2 us static, <= 3 us L1 hit (the seed's own target is 10 ms)")

    runtime = Runtime(config, environ={})
    runtime.run("(defn add3 [a b c] (+ a b c))")
    vm, add3 = runtime.vm, runtime.vm.globals["add3"]
    plus = vm.globals["+"]
    routed = percentiles(lambda: vm.call(add3, [1, 2, 3]), args.batches // 4)
    direct_vm = type(vm)()  # a VM with no router: nothing is claimed
    direct_vm.globals["add3"] = add3
    direct = percentiles(lambda: direct_vm.call(add3, [1, 2, 3]), args.batches // 4)
    print(f"\n(add3 1 2 3) whose (+ a b c) is routed to LocalPure: {routed[0]:.2f} us p50")
    print(f"the same call with no router involved:             {direct[0]:.2f} us p50")
    print(f"routing overhead per routed call:                  {routed[0] - direct[0]:.2f} us"
          f"  ({plus.name} goes through decide, execute, record)")


if __name__ == "__main__":
    main()
