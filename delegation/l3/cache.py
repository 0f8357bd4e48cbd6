"""L3: for each function and context, which allowed target serves best, learned as it runs.

Each (function, context fingerprint) has its own table of outcomes per target; a table made in
one context never serves another. `decide` picks among the targets policy allows (the caller
passes them, in policy order) with discounted UCB:

    index(t) = mean reward(t) + exploration * sqrt(2 ln(N) / n(t))

where `n(t)` is the discounted number of outcomes of `t` and `N` their sum. A target not yet
tried in this context is tried first. Every `record` multiplies the table's old outcomes by
`discount` before adding the new one, so a target that degrades loses its lead within a few
dozen calls, and exploration never stops (unlike an L1 plan, which repeats one decision).

The reward of an outcome is in [0, 1]: 0 for a failure, else
`1 / (1 + latency / latency target)`, times `1 / (1 + cost / budget)` when the context
declares a budget (and a quarter of that when the call cost more than the budget).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from delegation.l2.errors import CacheStateError
from delegation.l3.config import L3Config
from delegation.l3.context import Context
from delegation.statefile import StateFile
from delegation.targets import ExecTarget, from_tagged

FILE_FORMAT = 1
FILE_KIND = "rtfs-l3-contexts"
_STATE = StateFile(FILE_KIND, FILE_FORMAT, "L3 table", CacheStateError)

Key = tuple[str, str]


@dataclass
class Arm:
    """A target's discounted record in one context."""

    weight: float = 0.0
    reward: float = 0.0
    calls: int = 0

    @property
    def mean(self) -> float:
        return self.reward / self.weight if self.weight > 0 else 0.0


@dataclass
class Table:
    """One (function, context)'s arms; `touched` is the timer reading of its last use."""

    arms: dict[ExecTarget, Arm] = field(default_factory=dict)
    touched: float = 0.0


@dataclass(frozen=True, slots=True)
class L3Decision:
    """What L3 chose and why.

    Attributes:
        target: the chosen target (None when no target is allowed).
        fingerprint: the context's fingerprint (the table's key with the function).
        explored: the choice is not the best-known target (a first try or the UCB bonus).
        mean: the chosen target's mean reward in this context (None if untried).
        reason: one line for `--explain`.
    """

    target: ExecTarget | None
    fingerprint: str
    explored: bool
    mean: float | None
    reason: str


class ContextualCache:
    """The L3 contextual cache (see the module docstring); thread-safe.

    Args:
        config: `[delegation.l3]`.
        timer: monotonic clock for table TTLs (inject a fake one in tests).
    """

    def __init__(self, config: L3Config | None = None, *,
                 timer: Callable[[], float] = time.monotonic) -> None:
        self.config = config or L3Config()
        self._timer = timer
        self._lock = threading.Lock()
        self._tables: OrderedDict[Key, Table] = OrderedDict()

    # --- deciding -----------------------------------------------------------------------

    def decide(self, function: str, context: Context,
               allowed: Sequence[ExecTarget]) -> L3Decision:
        """Choose among `allowed` (policy order breaks ties) for `function` in `context`."""
        fp = context.fingerprint
        if not allowed:
            return L3Decision(None, fp, False, None, "L3: no target allowed")
        with self._lock:
            table = self._table((function, fp), create=False)
            arms = self._weighed((function, fp), table)
        for target in allowed:
            if target not in arms or arms[target].weight <= 0:
                return L3Decision(target, fp, True, None,
                                  f"L3 context {fp[:8]}: trying {target} (untried here)")
        total = sum(arms[t].weight for t in allowed)
        bonus = {t: self.config.exploration * math.sqrt(2 * math.log(max(total, 1.0))
                                                        / arms[t].weight) for t in allowed}
        chosen = max(allowed, key=lambda t: arms[t].mean + bonus[t])
        best = max(allowed, key=lambda t: arms[t].mean)
        arm = arms[chosen]
        explored = chosen != best
        reason = (f"L3 context {fp[:8]}: {chosen} mean reward {arm.mean:.2f} over "
                  f"{arm.calls} calls" + (f" (exploring; best {best} {arms[best].mean:.2f})"
                                          if explored else ""))
        return L3Decision(chosen, fp, explored, arm.mean, reason)

    # --- learning -----------------------------------------------------------------------

    def reward(self, context: Context, ok: bool, latency_s: float, cost: float = 0.0) -> float:
        """The reward in [0, 1] of one outcome in `context` (see the module docstring)."""
        if not ok:
            return 0.0
        target_s = context.latency_target_s or self.config.latency_target_ms / 1000.0
        value = 1.0 / (1.0 + max(0.0, latency_s) / target_s)
        budget = context.budget
        if budget is not None and budget > 0:
            value /= 1.0 + max(0.0, cost) / budget
            if cost > budget:
                value *= 0.25
        elif budget == 0 and cost > 0:
            value *= 0.25
        return value

    def record(self, function: str, context: Context, target: ExecTarget, ok: bool,
               latency_s: float, cost: float = 0.0) -> None:
        """Learn from one outcome of `function` on `target` in `context`."""
        reward = self.reward(context, ok, latency_s, cost)
        with self._lock:
            table = self._table((function, context.fingerprint), create=True)
            assert table is not None
            for arm in table.arms.values():
                arm.weight *= self.config.discount
                arm.reward *= self.config.discount
            arm = table.arms.setdefault(target, Arm())
            arm.weight += 1.0
            arm.reward += reward
            arm.calls += 1

    def _weighed(self, key: Key, table: Table | None) -> dict[ExecTarget, Arm]:
        """(Under the lock.) The arms `decide` weighs for `key`: a copy of this cache's table
        (a fleet's cache adds what the other nodes learned in the same context)."""
        return {t: Arm(a.weight, a.reward, a.calls)
                for t, a in (table.arms.items() if table else ())}

    def _table(self, key: Key, *, create: bool) -> Table | None:
        now = self._timer()
        table = self._tables.get(key)
        if table is not None and now - table.touched >= self.config.ttl_s:
            del self._tables[key]
            table = None
        if table is None:
            if not create:
                return None
            while len(self._tables) >= self.config.max_entries:
                self._tables.popitem(last=False)
            table = self._tables[key] = Table()
        table.touched = now
        self._tables.move_to_end(key)
        return table

    # --- inspection and invalidation ----------------------------------------------------

    def arms(self, function: str, context: Context) -> dict[ExecTarget, Arm]:
        """The arms `decide` weighs for `function` in `context` (empty when there are none)."""
        key = (function, context.fingerprint)
        with self._lock:
            return self._weighed(key, self._tables.get(key))

    def invalidate_function(self, function: str) -> int:
        """Forget every context's table of `function`; return how many."""
        with self._lock:
            doomed = [k for k in self._tables if k[0] == function]
            for key in doomed:
                del self._tables[key]
            return len(doomed)

    def __len__(self) -> int:
        with self._lock:
            return len(self._tables)

    # --- persistence --------------------------------------------------------------------

    def save(self, path: str | Path) -> int:
        """Write every table (msgpack, atomically); return how many."""
        with self._lock:
            rows = [[fn, fp, [[t.to_tagged(), a.weight, a.reward, a.calls]
                              for t, a in table.arms.items()]]
                    for (fn, fp), table in self._tables.items()]
        _STATE.write(path, rows)
        return len(rows)

    def load(self, path: str | Path) -> int:
        """Restore tables written by `save` (a missing file restores nothing).

        Raises:
            CacheStateError: the file is not an L3 table file.
        """
        rows = _STATE.read(path, _row)
        if rows is None:
            return 0
        with self._lock:
            for fn, fp, arms in rows:
                table = self._table((fn, fp), create=True)
                assert table is not None
                table.arms = arms
        return len(rows)


def _row(row: Any) -> tuple[str, str, dict[ExecTarget, Arm]]:
    fn, fp, arms = row
    if not (isinstance(fn, str) and isinstance(fp, str)):
        raise TypeError("malformed table key")
    return fn, fp, {from_tagged(t): Arm(float(w), float(r), int(c)) for t, w, r, c in arms}
