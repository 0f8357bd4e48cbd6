"""`SharedLearner`: outcome statistics learned together by every node of a fleet.

Each runtime writes under its own writer id the *cumulative* totals of what it observed, one
entry per `(symbol, target)` in the shards' `outcomes` namespace, keyed
`(symbol, "<writer>/<target>")`. Totals, not deltas: a write
that is retried or reaches a replica twice changes nothing (last writer wins per writer), and
a restarted shard gets the same totals back from its replicas. Reading sums the other
writers' totals; what this runtime observes itself it records directly. So the learner's
records are always "the fleet's outcomes + mine", each counted once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import msgpack

from cluster.wire import Entry, Stamp
from delegation.errors import TargetError
from delegation.learning import Learner, TargetRecord
from delegation.targets import ExecTarget, from_tagged

OUTCOME_FORMAT = 1
DEFAULT_OUTCOME_TTL_S = 7 * 86_400.0


def encode_outcome(target: ExecTarget, record: TargetRecord) -> bytes:
    """An outcome value: `[format, target tagged, calls, successes, latency_s, cost]`."""
    return msgpack.packb([OUTCOME_FORMAT, target.to_tagged(), record.calls, record.successes,
                          record.latency_ewma_s, record.cost_total], use_bin_type=True)


def decode_outcome(value: bytes) -> tuple[ExecTarget, TargetRecord]:
    """Inverse of `encode_outcome`; raises `ValueError`, `TypeError` or `TargetError`."""
    fmt, tagged, calls, successes, latency, cost = msgpack.unpackb(value, raw=False)
    if fmt != OUTCOME_FORMAT:
        raise ValueError(f"outcome format {fmt!r}")
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in (calls, successes)):
        raise TypeError("calls and successes must be integers")
    if not 0 <= successes <= calls:
        raise ValueError("successes must be within 0..calls")
    return from_tagged(tagged), TargetRecord(calls, successes, float(latency), float(cost))


def _delta(new: TargetRecord, old: TargetRecord | None) -> TargetRecord:
    if old is None:
        return new
    calls = new.calls - old.calls
    if calls <= 0:
        return TargetRecord()
    latency = (new.latency_ewma_s * new.calls - old.latency_ewma_s * old.calls) / calls
    return TargetRecord(calls, max(0, min(calls, new.successes - old.successes)),
                        max(0.0, latency), max(0.0, new.cost_total - old.cost_total))


class SharedLearner(Learner):
    """A `Learner` whose records include the rest of the fleet's; thread-safe.

    Args:
        writer: this runtime's writer id (distinct per runtime).
        ttl_s: how long the fleet keeps this runtime's totals after its last write.
        clock: wall clock (epoch seconds) for versions and expiry.
    """

    def __init__(self, writer: str, *, ttl_s: float = DEFAULT_OUTCOME_TTL_S,
                 clock: Callable[[], float] = time.time, min_calls: int = 3,
                 alpha: float = 0.3) -> None:
        super().__init__(min_calls=min_calls, alpha=alpha)
        self.writer = writer
        self.ttl_s = ttl_s
        self._clock = clock
        self._mine = Learner(min_calls=min_calls, alpha=alpha)
        self._shared_lock = threading.Lock()
        self._dirty: set[tuple[str, ExecTarget]] = set()
        self._seen: dict[tuple[str, str, str], TargetRecord] = {}
        self._version = 0
        self.bad_values = 0

    def record(self, symbol: str, target: ExecTarget, ok: bool, latency_s: float,
               cost: float = 0.0) -> None:
        super().record(symbol, target, ok, latency_s, cost)
        self._mine.record(symbol, target, ok, latency_s, cost)
        with self._shared_lock:
            self._dirty.add((symbol, target))

    def take_entries(self) -> list[Entry]:
        """This runtime's totals changed since the last call, as entries to write."""
        with self._shared_lock:
            dirty, self._dirty = self._dirty, set()
        out = []
        for symbol, target in sorted(dirty, key=str):
            record = self._mine.records(symbol).get(target)
            if record is not None:
                out.append(Entry(symbol, f"{self.writer}/{target}", self._stamp(),
                                 encode_outcome(target, record)))
        return out

    def _stamp(self) -> Stamp:
        now = self._clock()
        with self._shared_lock:
            self._version = max(self._version + 1, int(now * 1e9))
            return Stamp(self._version, self.writer, now + self.ttl_s)

    def apply_fleet(self, entries: Iterable[Entry]) -> int:
        """Merge other writers' totals (what grew since last seen); how many merged."""
        merged = 0
        for entry in entries:
            if entry.stamp.writer == self.writer or entry.value is None:
                continue
            try:
                target, record = decode_outcome(entry.value)
            except (ValueError, TypeError, TargetError, msgpack.UnpackException):
                self.bad_values += 1
                continue
            key = (entry.agent, entry.task, entry.stamp.writer)
            with self._shared_lock:
                delta = _delta(record, self._seen.get(key))
                self._seen[key] = record
            if delta.calls > 0:
                self.merge(entry.agent, target, delta)
                merged += 1
        return merged

    namespace = "outcomes"  # as a `cluster.planstore.Companion`

    def merge_agent(self, agent: str, entries: list[Entry]) -> int:
        """The fleet's totals of `agent` (`apply_fleet`; a companion of the plan store)."""
        return self.apply_fleet(entries)

    def wanted(self) -> list[str]:
        """Nothing to refresh: the outcomes come with each run's prefetch."""
        return []

    def own(self, symbol: str) -> dict[ExecTarget, Any]:
        """What this runtime observed itself for `symbol`."""
        return self._mine.records(symbol)
