"""Learning from outcomes: every routed call's success, latency and cost, per target.

`Learner.best(symbol, candidates)` suggests the target with the best record for a symbol once
it has enough observations: success rate first, then lower latency, then lower cost. The
record persists beside the L1 plans, so what one run learned the next run uses.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from delegation.errors import PlanCacheError
from delegation.statefile import StateFile
from delegation.targets import ExecTarget, from_tagged

FILE_FORMAT = 1
FILE_KIND = "rtfs-outcomes"
_STATE = StateFile(FILE_KIND, FILE_FORMAT, "outcome record", PlanCacheError)


@dataclass
class TargetRecord:
    """What one target did for one symbol."""

    calls: int = 0
    successes: int = 0
    latency_ewma_s: float = 0.0
    cost_total: float = 0.0

    @property
    def success_rate(self) -> float:
        return self.successes / self.calls if self.calls else 0.0

    def add(self, ok: bool, latency_s: float, cost: float, alpha: float) -> None:
        self.calls += 1
        self.successes += ok
        first = self.calls == 1
        self.latency_ewma_s = latency_s if first else (
            alpha * latency_s + (1 - alpha) * self.latency_ewma_s)
        self.cost_total += cost

    def merge(self, other: TargetRecord) -> None:
        """Add another node's counts; latency becomes the call-weighted mean of both."""
        total = self.calls + other.calls
        if total:
            self.latency_ewma_s = (self.latency_ewma_s * self.calls
                                   + other.latency_ewma_s * other.calls) / total
        self.calls = total
        self.successes += other.successes
        self.cost_total += other.cost_total


class Learner:
    """Outcome statistics per (symbol, target); thread-safe.

    Args:
        min_calls: observations a target needs before it can be suggested.
        alpha: weight of the newest latency in the moving average.
    """

    def __init__(self, *, min_calls: int = 3, alpha: float = 0.3) -> None:
        self.min_calls = min_calls
        self.alpha = alpha
        self._lock = threading.Lock()
        self._records: dict[str, dict[ExecTarget, TargetRecord]] = {}

    def record(self, symbol: str, target: ExecTarget, ok: bool, latency_s: float,
               cost: float = 0.0) -> None:
        with self._lock:
            per_symbol = self._records.setdefault(symbol, {})
            per_symbol.setdefault(target, TargetRecord()).add(ok, latency_s, cost, self.alpha)

    def merge(self, symbol: str, target: ExecTarget, delta: TargetRecord) -> None:
        """Combine outcomes observed elsewhere (another node of the fleet, a saved file)
        additively: calls, successes and cost add up; latency is weighted by calls."""
        if delta.calls < 0 or not 0 <= delta.successes <= delta.calls:
            raise ValueError(f"not an outcome delta: {delta}")
        with self._lock:
            per_symbol = self._records.setdefault(symbol, {})
            per_symbol.setdefault(target, TargetRecord()).merge(delta)

    def records(self, symbol: str) -> dict[ExecTarget, TargetRecord]:
        with self._lock:
            return {t: TargetRecord(**vars(r)) for t, r in self._records.get(symbol, {}).items()}

    def best(self, symbol: str, candidates: Sequence[ExecTarget] = ()
             ) -> tuple[ExecTarget, str] | None:
        """The best-recorded target among `candidates` and those already tried, with why."""
        records = self.records(symbol)
        ordered = dict.fromkeys([*candidates, *records])  # deterministic order for ties
        pool = [t for t in ordered if t in records and records[t].calls >= self.min_calls
                and records[t].successes]
        if not pool:
            return None
        best = max(pool, key=lambda t: (records[t].success_rate, -records[t].latency_ewma_s,
                                        -records[t].cost_total / records[t].calls))
        r = records[best]
        return best, (f"learned: {r.success_rate:.0%} success over {r.calls} calls, "
                      f"{r.latency_ewma_s * 1e3:.1f} ms typical")

    def save(self, path: str | Path) -> int:
        with self._lock:
            rows = [[symbol, target.to_tagged(), r.calls, r.successes, r.latency_ewma_s,
                     r.cost_total]
                    for symbol, per in sorted(self._records.items())
                    for target, r in per.items()]
        _STATE.write(path, rows)
        return len(rows)

    def load(self, path: str | Path) -> int:
        """Merge a saved record; a missing file restores nothing.

        Raises:
            PlanCacheError: the file exists but is not an outcome record.
        """
        rows = _STATE.read(path, _row)
        if rows is None:
            return 0
        with self._lock:
            for symbol, target, calls, successes, latency, cost in rows:
                self._records.setdefault(symbol, {})[target] = TargetRecord(
                    calls, successes, latency, cost)
        return len(rows)


def _row(row: Any) -> tuple[str, ExecTarget, int, int, float, float]:
    symbol, tagged, calls, successes, latency, cost = row
    if not (isinstance(symbol, str) and 0 <= successes <= calls):
        raise ValueError("malformed row")
    return symbol, from_tagged(tagged), int(calls), int(successes), float(latency), float(cost)
