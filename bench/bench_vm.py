"""RTFS against CPython on the same algorithms, measured interleaved in the same run.

    python bench/bench_vm.py [--rounds N] [--cli-rounds N] [--profile]

Every comparison alternates its sides round by round (A B, B A, A B, ...), times each call on
its own, and reports per-call p50 and p99; each goal is stated as a ratio of p50s to its
yardstick in the same run, and marked met or not. Not a test: the machine is shared and
noisy, so compare ratios, not absolute times.

Goals (issue 11, "A fast LocalPure"):
  fib(20), fib(27)                       <= 10x CPython
  map/filter/reduce over 10k items       <= 4x CPython
  `rtfs eval` of fib(27) minus start-up  <= 10x `python -c` fib(27) minus start-up
  fib(20) under examples/delegation.toml <= 1.1x the unrouted VM
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from functools import reduce
from pathlib import Path

from rtfs.compiler import compile_program
from rtfs.reader import read
from rtfs.vm import VM

REPO = Path(__file__).resolve().parents[1]
FIB_RTFS = "(defn fib [n] (if (< n 2) n (+ (fib (- n 1)) (fib (- n 2)))))"
PIPELINE_RTFS = "(defn pipeline [xs] (reduce + 0 (filter even? (map (fn [x] (* x x)) xs))))"
FIB_PY = "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n"


def fib_py(n: int) -> int:
    return n if n < 2 else fib_py(n - 1) + fib_py(n - 2)


def pipeline_py(xs: tuple[int, ...]) -> int:
    # the same three higher-order calls as the RTFS program, each with a function
    return reduce(lambda a, b: a + b, filter(lambda x: x % 2 == 0, map(lambda x: x * x, xs)), 0)  # noqa: C417


def interleaved(sides: Mapping[str, Callable[[], object]], rounds: int
                ) -> dict[str, list[float]]:
    """Per-call seconds of each side; the order of the sides flips every round."""
    samples: dict[str, list[float]] = {name: [] for name in sides}
    items = list(sides.items())
    for r in range(rounds):
        for name, fn in items if r % 2 == 0 else reversed(items):
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    return samples


def p50(values: list[float]) -> float:
    return statistics.median(values)


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


class Table:
    def __init__(self) -> None:
        self.goals: list[str] = []
        print(f"{'case':<44} {'p50 ms':>9} {'p99 ms':>9}")

    def row(self, name: str, values: list[float]) -> None:
        print(f"{name:<44} {p50(values) * 1e3:>9.3f} {p99(values) * 1e3:>9.3f}")

    def goal(self, what: str, ratio: float, limit: float, yardstick: str) -> None:
        verdict = "met" if ratio <= limit else "NOT met"
        self.goals.append(f"{what:<44} {ratio:>6.2f}x {yardstick} (goal <= {limit}x): {verdict}")

    def summary(self) -> None:
        print("\ngoals, as ratios of p50s measured in this run:")
        for line in self.goals:
            print("  " + line)


def define(vm: VM, text: str) -> None:
    vm.run(compile_program(read(text), resolve_source=vm.source_hash_of))


def bench_fib(table: Table, n: int, rounds: int, with_loop: bool) -> None:
    fast, loop = VM(), VM(fast=False)
    define(fast, FIB_RTFS)
    define(loop, FIB_RTFS)
    fib, fib_loop = fast.globals["fib"], loop.globals["fib"]
    assert fast.call(fib, [n]) == fib_py(n) == loop.call(fib_loop, [n])
    sides: dict[str, Callable[[], object]] = {
        "rtfs": lambda: fast.call(fib, [n]), "cpython": lambda: fib_py(n)}
    if with_loop:
        sides["loop"] = lambda: loop.call(fib_loop, [n])
    samples = interleaved(sides, rounds)
    table.row(f"fib({n}) RTFS (fast path)", samples["rtfs"])
    table.row(f"fib({n}) CPython", samples["cpython"])
    if with_loop:
        table.row(f"fib({n}) RTFS bytecode loop (fast=False)", samples["loop"])
    table.goal(f"fib({n}) RTFS / CPython", p50(samples["rtfs"]) / p50(samples["cpython"]),
               10, "CPython")


def bench_pipeline(table: Table, rounds: int) -> None:
    vm = VM()
    define(vm, PIPELINE_RTFS)
    pipeline = vm.globals["pipeline"]
    items = tuple(range(10_000))
    assert vm.call(pipeline, [items]) == pipeline_py(items)
    samples = interleaved({"rtfs": lambda: vm.call(pipeline, [items]),
                           "cpython": lambda: pipeline_py(items)}, rounds)
    table.row("map/filter/reduce 10k RTFS", samples["rtfs"])
    table.row("map/filter/reduce 10k CPython", samples["cpython"])
    table.goal("map/filter/reduce 10k RTFS / CPython",
               p50(samples["rtfs"]) / p50(samples["cpython"]), 4, "CPython")


def _run(argv: list[str]) -> None:
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, cwd=REPO)


def bench_cli(table: Table, rounds: int) -> None:
    rtfs = [sys.executable, "-m", "rtfs", "eval", "-e"]
    python = [sys.executable, "-c"]
    sides = {
        "rtfs": lambda: _run([*rtfs, FIB_RTFS + " (fib 27)"]),
        "rtfs start-up": lambda: _run([*rtfs, FIB_RTFS + " nil"]),
        "python": lambda: _run([*python, FIB_PY + "print(fib(27))"]),
        "python start-up": lambda: _run([*python, FIB_PY + "print(None)"]),
    }
    samples = interleaved(sides, rounds)
    for name, values in samples.items():
        table.row(f"CLI {name}", values)
    rtfs_s = p50(samples["rtfs"]) - p50(samples["rtfs start-up"])
    python_s = p50(samples["python"]) - p50(samples["python start-up"])
    print(f"{'CLI fib(27) minus start-up: rtfs / python':<44} {rtfs_s * 1e3:>9.3f} "
          f"{python_s * 1e3:>9.3f}")
    table.goal("CLI fib(27) minus start-up, rtfs / python", rtfs_s / python_s, 10,
               "python -c")


def bench_routed(table: Table, rounds: int) -> None:
    from delegation.config import load_config
    from delegation.runtime import Runtime

    with tempfile.TemporaryDirectory() as state:
        config = load_config(REPO / "examples" / "delegation.toml", state_dir=state)
        runtime = Runtime(config, environ={})
        runtime.run(FIB_RTFS)
        plain = VM()
        define(plain, FIB_RTFS)
        routed_fib, plain_fib = runtime.vm.globals["fib"], plain.globals["fib"]
        assert runtime.vm.call(routed_fib, [20]) == plain.call(plain_fib, [20]) == 6765
        samples = interleaved({"routed": lambda: runtime.vm.call(routed_fib, [20]),
                               "plain": lambda: plain.call(plain_fib, [20])}, rounds)
        table.row("fib(20) under examples/delegation.toml", samples["routed"])
        table.row("fib(20) unrouted VM", samples["plain"])
        table.goal("fib(20) delegation.toml / unrouted",
                   p50(samples["routed"]) / p50(samples["plain"]), 1.1, "unrouted VM")
        program = compile_program(read("(fib 20)"))
        samples = interleaved({"routed": lambda: runtime.run("(fib 20)"),
                               "plain": lambda: plain.run(program)}, max(rounds // 4, 5))
        table.row("  (fib 20) as a program: Runtime.run", samples["routed"])
        table.row("  (fib 20) as a program: VM.run", samples["plain"])


def profile_fib() -> None:
    vm = VM()
    define(vm, FIB_RTFS)
    fib = vm.globals["fib"]
    vm.call(fib, [5])
    profile = cProfile.Profile()
    profile.runcall(vm.call, fib, [20])
    stats = pstats.Stats(profile).sort_stats("tottime")
    total = sum(row[2] for row in stats.stats.values())  # type: ignore[attr-defined]
    rows = sorted(stats.stats.items(), key=lambda item: -item[1][2])[:6]  # type: ignore
    print("\nwhere fib(20) spends its time on the fast path (cProfile, by own time):")
    for (filename, line, func), (_, calls, own, _, _) in rows:
        where = f"{filename.rsplit('/', 1)[-1]}:{line}"
        print(f"  {own / total:6.1%}  {calls:>8} calls  {func} ({where})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=100, help="rounds of the short cases")
    parser.add_argument("--cli-rounds", type=int, default=7)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    table = Table()
    bench_fib(table, 20, args.rounds, with_loop=True)
    bench_fib(table, 27, max(args.rounds // 10, 5), with_loop=False)
    bench_pipeline(table, args.rounds)
    bench_routed(table, args.rounds)
    bench_cli(table, args.cli_rounds)
    table.summary()
    if args.profile:
        profile_fib()


if __name__ == "__main__":
    main()
