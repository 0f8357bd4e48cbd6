"""RTFS VM against plain CPython on the same algorithms, measured in the same run.

    python bench/bench_vm.py [--repeat N]

Prints a table of median wall time per run and the ratio RTFS / CPython, then the share of
VM time spent in the functions that dominate it (from cProfile), so the ratio can be read.
Not a test: the machine is shared and noisy; compare ratios, not absolute times.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import time
from collections.abc import Callable

from rtfs.compiler import compile_program
from rtfs.reader import read
from rtfs.vm import VM

FIB_RTFS = "(defn fib [n] (if (< n 2) n (+ (fib (- n 1)) (fib (- n 2)))))"
PIPELINE_RTFS = "(defn pipeline [xs] (reduce + 0 (filter even? (map (fn [x] (* x x)) xs))))"


def fib_py(n: int) -> int:
    return n if n < 2 else fib_py(n - 1) + fib_py(n - 2)


def pipeline_py(xs: tuple[int, ...]) -> int:
    from functools import reduce

    return reduce(lambda a, b: a + b, filter(lambda x: x % 2 == 0, map(lambda x: x * x, xs)), 0)


def median_time(fn: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    vm = VM()
    vm.run(compile_program(read(FIB_RTFS + PIPELINE_RTFS)))
    fib, pipeline = vm.globals["fib"], vm.globals["pipeline"]
    items = tuple(range(10_000))
    assert vm.call(fib, [20]) == fib_py(20) and vm.call(pipeline, [items]) == pipeline_py(items)
    cases = [
        ("fib(20)", lambda: vm.call(fib, [20]), lambda: fib_py(20)),
        ("map/filter/reduce 10k", lambda: vm.call(pipeline, [items]), lambda: pipeline_py(items)),
    ]
    print(f"{'benchmark':<34} {'RTFS ms':>10} {'CPython ms':>11} {'ratio':>7}")
    for name, rtfs_fn, py_fn in cases:
        rtfs_s, py_s = median_time(rtfs_fn, args.repeat), median_time(py_fn, args.repeat)
        print(f"{name:<34} {rtfs_s * 1e3:>10.2f} {py_s * 1e3:>11.2f} {rtfs_s / py_s:>7.1f}x")
    per_call = median_time(lambda: [vm.call(fib, [1]) for _ in range(10_000)], args.repeat) / 1e4
    print(f"\none RTFS function call through vm.call: {per_call * 1e6:.2f} us")
    print("\nwhere fib(20) spends its time (cProfile, top 5 by own time):")
    profile = cProfile.Profile()
    profile.runcall(vm.call, fib, [20])
    stats = pstats.Stats(profile).sort_stats("tottime")
    total = sum(row[2] for row in stats.stats.values())
    rows = sorted(stats.stats.items(), key=lambda item: -item[1][2])[:5]
    for (filename, line, func), (_, calls, own, _, _) in rows:
        where = f"{filename.rsplit('/', 1)[-1]}:{line}"
        print(f"  {own / total:6.1%}  {calls:>8} calls  {func} ({where})")


if __name__ == "__main__":
    main()
