"""Deciding and routing: `decide()` per layer, a routed call, and LiteLLM's Router.

    python bench/bench_decide.py [--rounds N] [--no-litellm]

Per-call p50/p99 in microseconds, every comparison interleaved (the sides alternate in
rounds), every goal a ratio to a yardstick measured in the same run:
- `decide()` per layer (static route, L1 hit, default) for the bare static engine and the
  full chain the runtime uses (Resilient(SecurityAware(Static))), against
  `cachetools.TTLCache.get`;
- a call a plan makes that is routed to a trivial provider (the whole path: context,
  decision, security, health, execution, outcome, trace) against the same plan calling a
  plain RTFS function, and against LiteLLM's `Router.completion` with a mocked response
  (goal: <= 1/300 of it). LiteLLM is not a dependency: it is installed once into
  `bench/.venv-litellm` (needs the package registry) and runs there as a subprocess;
  `--no-litellm` skips it.
- `fib(20)` under `examples/delegation.toml` (which routes `+` to local-pure) against the
  unrouted VM (goal <= 1.1x): a static route to the VM is decided once per call site.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import venv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cachetools
from timing import Table, interleaved, p50  # bench/timing.py (run as a script)

from delegation.config import load_config, parse_config
from delegation.context import CallContext
from delegation.engine import (
    ResilientDelegationEngine,
    SecurityAwareDelegationEngine,
    StaticDelegationEngine,
)
from delegation.extensions import Extensions, ProviderKindSpec
from delegation.health import HealthMonitor
from delegation.l1 import L1PlanCache, new_plan
from delegation.providers import build_registry
from delegation.providers.base import BaseProvider, Health, ModelResult
from delegation.runtime import Runtime
from delegation.targets import LocalModel
from rtfs.compiler import compile_program
from rtfs.reader import read
from rtfs.vm import VM

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv-litellm"

DECIDE_CONFIG = """
[delegation.static_routes]
"sentiment" = "local-sentiment-rules"
"ai-*" = "local-summarizer"
"+" = "local-pure"
[delegation.local_models.sentiment-rules]
kind = "sentiment-rules"
[delegation.local_models.summarizer]
kind = "extractive-summarizer"
[delegation.l4]
store = "memory://bench"
"""

ROUTED_CONFIG = """
[delegation.static_routes]
"ask" = "remote-echo"
[delegation.remote_providers.echo]
kind = "bench-echo"
[delegation.l2]
enabled = false
[delegation.l4]
store = "memory://bench-routed"
"""


class Echo(BaseProvider):
    """The trivial target: answers with its prompt, no I/O."""

    def __init__(self, cfg: Any, ctx: Any) -> None:
        super().__init__(cfg.id)
        self._health = Health(True, "echo")

    def infer(self, prompt: str, **params: Any) -> ModelResult:
        return ModelResult(self.id, prompt, prompt, 0.0, 0.0)

    def health(self) -> Health:
        return self._health


def decide_rows(table: Table, rounds: int) -> None:
    config = parse_config(DECIDE_CONFIG)
    plans = L1PlanCache(ttl_s=3600)
    for i in range(10_000):
        plans.put(f"fn{i}", "00000000000000ff", new_plan(LocalModel("summarizer"), 0.9, "bench"))
    plans.put("planned", "00000000000000ff", new_plan(LocalModel("summarizer"), 0.9, "bench"))
    static = StaticDelegationEngine(config, plans=plans)
    health = HealthMonitor(build_registry(config, {}))
    full = ResilientDelegationEngine(SecurityAwareDelegationEngine(static, config, health), health)
    ttl: cachetools.TTLCache[Any, int] = cachetools.TTLCache(maxsize=10_000, ttl=3600)
    for i in range(10_000):
        ttl[("fn", i)] = i
    sides: dict[str, Callable[[], object]] = {"cachetools.TTLCache.get (yardstick)":
                                              lambda: ttl.get(("fn", 5000))}
    for label, name in (("static route", "sentiment"), ("L1 hit", "planned"),
                        ("default", "unknown")):
        ctx = CallContext(name, 0x0F, 0xF0)
        sides[f"decide {label}: static engine"] = lambda c=ctx: static.decide(c)
        sides[f"decide {label}: full chain"] = lambda c=ctx: full.decide(c)
    samples = interleaved(sides, rounds, per_round=200)
    for name, values in samples.items():
        table.row(name, values)
    yard = p50(samples["cachetools.TTLCache.get (yardstick)"])
    table.goal("decide, L1 hit, full chain", p50(samples["decide L1 hit: full chain"]) / yard,
               3.0, "TTLCache.get")


def routed_runtime() -> tuple[VM, Any, Any]:
    ext = Extensions()
    ext.add_provider_kind(ProviderKindSpec("bench-echo", {}, Echo))
    config = parse_config(ROUTED_CONFIG, extensions=ext)
    runtime = Runtime(config, registry=build_registry(config, {}, extensions=ext))
    runtime.run("(defn routed [x] (ask x))\n(defn plain [x] (str x))")
    return runtime.vm, runtime.vm.globals["routed"], runtime


def litellm_side() -> subprocess.Popen[str] | None:
    """LiteLLM in its own environment, ready to time calls; None if it cannot be set up."""
    python = VENV / "bin" / "python"
    if not python.exists():
        print("installing litellm into bench/.venv-litellm (once) ...", file=sys.stderr)
        venv.create(VENV, with_pip=True)
        done = subprocess.run([str(python), "-m", "pip", "install", "-q", "litellm"],
                              capture_output=True, text=True)
        if done.returncode != 0:
            print(f"litellm could not be installed: {done.stderr.strip()[-300:]}",
                  file=sys.stderr)
            return None
    side = subprocess.Popen([str(python), str(HERE / "litellm_side.py")], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert side.stdout is not None
    if side.stdout.readline().strip() != "ready":
        return None
    return side


def routed_rows(table: Table, rounds: int, with_litellm: bool) -> None:
    vm, routed, runtime = routed_runtime()
    plain = vm.globals["plain"]
    side = litellm_side() if with_litellm else None
    litellm: list[float] = []

    def litellm_round() -> None:
        assert side is not None and side.stdin is not None and side.stdout is not None
        side.stdin.write("20\n")
        side.stdin.flush()
        litellm.extend(int(ns) / 1e9 for ns in side.stdout.readline().split())

    ours: dict[str, list[float]] = {"routed": [], "plain": []}
    sides = {"routed": lambda: vm.call(routed, ["hi"]), "plain": lambda: vm.call(plain, ["hi"])}
    for r in range(rounds):
        for name, values in interleaved(sides, 1, per_round=200).items():
            ours[name].extend(values)
        runtime.router.take_records()  # the trace of a long run stays bounded
        if side is not None:
            litellm_round()
    table.row("plan call routed to a trivial provider", ours["routed"])
    table.row("plan call of a plain RTFS function", ours["plain"])
    if side is not None:
        side.terminate()
        table.row("LiteLLM Router.completion, mocked (yardstick)", litellm)
        table.goal("routed call / LiteLLM mocked completion",
                   p50(ours["routed"]) / p50(litellm), 1 / 300, "LiteLLM")
    print(f"\nrouting overhead per call: {(p50(ours['routed']) - p50(ours['plain'])) * 1e6:.2f} us")


def fib_rows(table: Table, rounds: int) -> None:
    config = load_config(HERE.parent / "examples" / "delegation.toml", environ={})
    fib = "(defn fib [n] (if (< n 2) n (+ (fib (- n 1)) (fib (- n 2)))))"
    routed = Runtime(config, environ={}, read_only=True)
    routed.run(fib)
    bare = VM()
    bare.run(compile_program(read(fib)))
    sides = {"fib(20) under examples/delegation.toml": lambda: routed.vm.call(
                 routed.vm.globals["fib"], [20]),
             "fib(20), unrouted VM": lambda: bare.call(bare.globals["fib"], [20])}
    samples = interleaved(sides, rounds)
    for name, values in samples.items():
        table.row(name, values)
    table.goal("fib(20) routed by config / unrouted",
               p50(samples["fib(20) under examples/delegation.toml"])
               / p50(samples["fib(20), unrouted VM"]), 1.1, "unrouted")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--no-litellm", action="store_true")
    args = parser.parse_args()
    table = Table("us")
    decide_rows(table, args.rounds)
    routed_rows(table, args.rounds, not args.no_litellm)
    fib_rows(table, args.rounds)
    table.summary()


if __name__ == "__main__":
    main()
