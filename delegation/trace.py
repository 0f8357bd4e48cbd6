"""The trace of routed calls: one `CallRecord` per call, for `--explain` and `--json`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rtfs.printer import preview

MAX_RECORDS = 10_000  # the explain trace keeps the most recent calls of a run


@dataclass(slots=True)
class CallRecord:
    """One routed call, for `--explain` and `--json`."""

    symbol: str
    kind: str
    target: str
    layer: str
    reason: str
    cache: str  # "hit" (decided by an L1 plan), "stored" (became one), or "-"
    outcome: str = "ok"  # ok | error | refused | unavailable
    detail: str = ""
    latency_s: float = 0.0
    cost: float = 0.0
    attempts: list[str] = field(default_factory=list)
    line: int | None = None
    col: int | None = None
    l2: str = "-"  # "exact"/"semantic" (served from L2), "shadow", "miss", "stored" or "-"
    notes: list[str] = field(default_factory=list)  # L2/L3 explanations for --explain
    value: Any = None  # the value returned, until `settle` renders it into `detail`

    def settle(self) -> CallRecord:
        """Render the returned value into `detail` (done when the trace is read, not on the
        call's path) and let the value go."""
        if self.outcome == "ok" and not self.detail:
            self.detail = preview(self.value)
        self.value = None
        return self

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__ if name != "value"}
