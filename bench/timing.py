"""What the benchmarks share: per-call timings taken interleaved, percentiles, and a table
that states each goal as a ratio to its yardstick measured in the same run."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping


def interleaved(sides: Mapping[str, Callable[[], object]], rounds: int, per_round: int = 1
                ) -> dict[str, list[float]]:
    """Per-call seconds of each side: `per_round` calls of each side per round, the sides
    alternating and their order flipping every round, so load on a shared machine falls on
    all of them alike."""
    samples: dict[str, list[float]] = {name: [] for name in sides}
    items = list(sides.items())
    clock = time.perf_counter
    for r in range(rounds):
        for name, fn in items if r % 2 == 0 else reversed(items):
            out = samples[name]
            for _ in range(per_round):
                start = clock()
                fn()
                out.append(clock() - start)
    return samples


def percentile(values: list[float], q: float) -> float:
    """The `q` quantile (0..1) of `values`, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def p50(values: list[float]) -> float:
    return percentile(values, 0.5)


def p99(values: list[float]) -> float:
    return percentile(values, 0.99)


class Table:
    """Rows of p50/p99 in a chosen unit, then each goal as a ratio of p50s from this run."""

    def __init__(self, unit: str = "us") -> None:
        self.unit = unit
        self.scale = {"s": 1.0, "ms": 1e3, "us": 1e6}[unit]
        self.goals: list[str] = []
        print(f"{'case':<52} {'p50 ' + unit:>10} {'p99 ' + unit:>10}")

    def row(self, name: str, values: list[float]) -> None:
        print(f"{name:<52} {p50(values) * self.scale:>10.2f} {p99(values) * self.scale:>10.2f}")

    def goal(self, what: str, ratio: float, limit: float, yardstick: str, *,
             at_most: bool = True) -> None:
        met = ratio <= limit if at_most else ratio >= limit
        sign = "<=" if at_most else ">="
        self.goals.append(f"{what:<46} {ratio:>9.4g}x {yardstick} (goal {sign} {limit:g}x): "
                          + ("met" if met else "NOT met"))

    def summary(self) -> None:
        print("\ngoals, as ratios of p50s measured in this run:")
        for line in self.goals:
            print("  " + line)


def pct(samples: list[float]) -> tuple[float, float]:
    """(p50, p99) of `samples`."""
    return p50(samples), p99(samples)


def timed(fn: Callable[[], object], calls: int = 1) -> float:
    """Seconds per call of `calls` calls of `fn`."""
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def alternate(sides: list[Callable[[], float]], rounds: int) -> list[list[float]]:
    """`rounds` samples of each side (each side returns its own measurement), in turn."""
    out: list[list[float]] = [[] for _ in sides]
    for _ in range(rounds):
        for samples, side in zip(out, sides, strict=True):
            samples.append(side())
    return out


def verdict(ratio: float, goal: float, at_least: bool) -> str:
    met = ratio >= goal if at_least else ratio <= goal
    return f"{'>=' if at_least else '<='} {goal:g}x: {'met' if met else 'NOT met'}"


class GoalTable:
    """Rows of measure, value, ratio and goal, printed aligned at the end."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, str]] = []

    def add(self, what: str, measured: str, ratio: str = "", goal: str = "") -> None:
        self.rows.append((what, measured, ratio, goal))

    def print(self) -> None:
        head = ("measure", "value", "ratio", "goal")
        widths = [max(len(r[i]) for r in [head, *self.rows]) for i in range(4)]
        for row in [head, *self.rows]:
            print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
