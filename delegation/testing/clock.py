"""Fake clocks for tests: `FakeClock` (the project's one, from `storage.testing`) stands still
until advanced; `FakeTimer` advances by a fixed step each time it is read (for latencies
measured between two reads)."""

from __future__ import annotations

import threading

from storage.testing import FakeClock

__all__ = ["FakeClock", "FakeTimer"]


class FakeTimer:
    """A timer that advances by `step` seconds each time it is read."""

    def __init__(self, step: float = 0.25, start: float = 1000.0) -> None:
        self.step = step
        self.now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            self.now += self.step
            return self.now
